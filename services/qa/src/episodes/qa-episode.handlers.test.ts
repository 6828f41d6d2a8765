import { type deviceEvents, type EventPayload, qaEpisodeEvents } from '@ferry/contracts';
import type { EventContext } from '@ferry/platform';
import { waitFor } from '@ferry/platform/testing';
import { type ControlledTransaction, sql, type Transaction } from 'kysely';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GOOD_PROFILE } from '../checks/testing/mcap-corpus.js';
import type { QaDB } from '../database.js';
import { actorOf, type QaFixture, qaFixture } from '../testing/qa-fixture.js';
import { deviceRecord } from '../testing/records.js';

describe('QaEpisodeHandlers and robot types', () => {
  let f: QaFixture;
  beforeAll(async () => {
    f = await qaFixture();
  });
  afterAll(() => f?.cleanup());

  type DeviceRegistered = EventPayload<typeof deviceEvents.registered>;
  const deviceEvent = (org: string, deviceId: string, robotType: string | null): DeviceRegistered => ({
    device: deviceRecord({ organization_id: org, device_id: deviceId, robot_type: robotType }),
  });
  /** What a consumer hands an inbox handler: the delivery and its transaction. */
  const inbox = (trx: Transaction<QaDB>): EventContext<QaDB> => ({
    trx,
    eventId: uuidv7(),
    eventType: 'test',
    subject: 'test',
    streamSeq: 1,
    deliveryCount: 1,
  });
  const row = (id: string) => f.db.selectFrom('episodes').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  const requests = (id: string) => f.outboxEvents(qaEpisodeEvents.autoCheckRequested, id);
  /** Every event QA wrote about the episode (status changes, checked runs, requests), oldest first. */
  const eventsOf = (id: string) =>
    f.db
      .selectFrom('outbox')
      .select(['id', 'event_type'])
      .where(sql<boolean>`payload->>'episode_id' = ${id} or payload->'run'->>'episode_id' = ${id}`)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
  const runs = (id: string) =>
    f.db.selectFrom('runs').selectAll().where('episode_id', '=', id).orderBy('finished_at').execute();
  const profileResult = async (runId: string) =>
    (
      await f.db
        .selectFrom('check_results')
        .select(['status', 'details'])
        .where('run_id', '=', runId)
        .where('name', '=', 'profile')
        .executeTakeFirstOrThrow()
    ).status;

  it('checks an episode again against its robot type’s profile when the robot type arrives after auto QA checked it', async () => {
    const org = await f.seed(3, { status: 'pending_qa' });
    const [checked, reviewed, pending] = await f.episodeIds(org);
    // The arm's profile wants a camera the fixture's recording lacks.
    await f.tx((trx) =>
      f.profiles.create(
        actorOf(org, 'admin'),
        {
          name: 'arms need a wrist camera',
          robot_type: 'arm-v1',
          rules: { ...GOOD_PROFILE, required_topics: [...GOOD_PROFILE.required_topics, '/camera/wrist'] },
        },
        trx,
      ),
    );
    // Auto QA overtakes the device event: no robot type yet, so no profile applies.
    await f.handlers.onEpisodeCreated(await f.createdEvent(checked!));
    const [first] = await runs(checked!);
    expect(first).toMatchObject({ status_after: 'approved', requested_by: 'auto-qa' });
    expect(await profileResult(first!.id)).toBe('skipped');
    await f.handlers.onEpisodeCreated(await f.createdEvent(reviewed!));
    await f.tx((trx) => f.episodes.review(actorOf(org), reviewed!, { decision: 'approve' }, trx));

    await f.tx((trx) => f.handlers.onDevice(deviceEvent(org, 'arm-1', 'arm-v1'), inbox(trx)));

    for (const id of [checked, reviewed, pending]) expect((await row(id!)).robot_type).toBe('arm-v1');
    // Only the one automated QA decided without its robot type is asked for again: a person decided the other, and
    // the pending one's check will read the robot type.
    const [request] = await requests(checked!);
    expect(request).toMatchObject({ reason: 'robot_type_known', organization_id: org });
    expect(await requests(reviewed!)).toEqual([]);
    expect(await requests(pending!)).toEqual([]);

    // qa__auto-recheck handles it: checked again, now against the profile, and failed by it. (A check claiming within
    // the request's own millisecond is not taken for its answer: this one starts past it, as any delivery does.)
    await waitFor(async () => (await f.now()) >= new Date(request!.requested_at), {
      what: 'the database clock to pass the request',
      intervalMs: 1,
    });
    await f.handlers.onAutoCheckRequested(request!);
    const [, second] = await runs(checked!);
    expect(second).toMatchObject({ trigger: 'auto', requested_by: 'auto-qa:robot_type_known', status_after: 'failed' });
    expect(await profileResult(second!.id)).toBe('failed');
    expect(await row(checked!)).toMatchObject({ qa_status: 'failed', failed_checks: ['profile@1'] });
    // The same request delivered again (a lost ack, a crash before it, a DLQ replay): the episode was checked since
    // it was asked for, so nothing runs, and production's copy sees no approved → qa_running → … flip.
    const eventsBefore = await eventsOf(checked!);
    await f.handlers.onAutoCheckRequested(request!);
    expect(await runs(checked!)).toHaveLength(2);
    expect(await row(checked!)).toMatchObject({ qa_status: 'failed', claim_id: null, last_run_id: second!.id });
    expect(await eventsOf(checked!)).toEqual(eventsBefore);
    // A redelivered request checks nothing more once the episode's status is a person's.
    await f.tx((trx) => f.episodes.review(actorOf(org), checked!, { decision: 'approve' }, trx));
    await f.handlers.onAutoCheckRequested(request!);
    expect(await runs(checked!)).toHaveLength(2);
  });

  it('asks for nothing when no profile of the robot type applies', async () => {
    const org = await f.seed(1, { status: 'pending_qa' });
    const [id] = (await f.episodeIds(org)) as [string];
    await f.handlers.onEpisodeCreated(await f.createdEvent(id));
    await f.tx((trx) => f.handlers.onDevice(deviceEvent(org, 'arm-1', 'humanoid-v2'), inbox(trx)));
    expect((await row(id)).robot_type).toBe('humanoid-v2');
    expect(await requests(id)).toEqual([]);
  });

  it('rewrites no episode when a device event carries no robot type', async () => {
    const org = await f.seed(3, { status: 'approved' });
    // Each row's version (xmin: the transaction that last wrote it); a rewrite, even to the same values, changes it.
    const versions = () =>
      sql<{ id: string; xmin: string; robot_type: string | null }>`
        select id, xmin::text, robot_type from episodes where organization_id = ${org} order by id`
        .execute(f.db)
        .then((r) => r.rows);
    const before = await versions();
    expect(before.map((r) => r.robot_type)).toEqual([null, null, null]);
    await f.tx((trx) => f.handlers.onDevice(deviceEvent(org, 'arm-1', null), inbox(trx)));
    expect(await versions()).toEqual(before);
    expect((await f.db.selectFrom('devices').selectAll().where('organization_id', '=', org).execute()).length).toBe(1);
  });

  it('gives an episode projected while its device’s first event commits that device’s robot type', async () => {
    const org = uuidv7();
    const deviceId = `arm-${uuidv7().slice(-8)}`;
    // The device event's transaction has applied the device and filled its episodes, and not committed yet.
    const device = await f.db.startTransaction().execute();
    let projection: Promise<ControlledTransaction<QaDB>> | undefined;
    try {
      await f.handlers.onDevice(deviceEvent(org, deviceId, 'arm-v1'), inbox(device));
      // Meanwhile the episode's projection runs (the episodes consumer, in its own transaction).
      const seeded = await f.seed(1, { status: 'pending_qa' });
      const template = await f.createdEvent(
        (await f.db.selectFrom('episodes').select('id').where('organization_id', '=', seeded).executeTakeFirstOrThrow())
          .id,
      );
      const episode = { ...template.episode, id: uuidv7(), organization_id: org, device_id: deviceId };
      projection = f.db.startTransaction().execute();
      const projecting = projection.then((trx) =>
        f.handlers.onEpisodeProjected({ episode }, inbox(trx)).then(() => trx),
      );
      // It waits for the device's transaction rather than reading no device and missing the fill.
      const pid = await f.backendPid(device);
      await waitFor(() => f.blocking(pid), { what: 'the projection to wait for the device event', intervalMs: 10 });
      await device.commit().execute();
      await (await projecting).commit().execute();
      expect((await row(episode.id)).robot_type).toBe('arm-v1');
    } finally {
      // A failure above must not leave either transaction open, holding the device lock for the next test.
      for (const trx of [device, await projection?.catch(() => undefined)]) {
        if (trx && !trx.isCommitted && !trx.isRolledBack) await trx.rollback().execute();
      }
    }
  });
});
