import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  deviceEvents,
  type Episode,
  type EventDefinition,
  episodeEvents,
  qaConsumers,
  qaEpisodeEvents,
} from '@ferry/contracts';
import { LocalBlobStore } from '@ferry/platform';
import { waitFor, waitForConsumerDrained } from '@ferry/platform/testing';
import { type Kysely, sql } from 'kysely';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GOOD_PROFILE, writeRecording } from '../../services/qa/src/checks/testing/mcap-corpus.js';
import { deviceRecord, episodeRecord } from '../../services/qa/src/testing/records.js';
import { type ServiceProcess, System } from '../support/system.js';

/**
 * Auto QA that QA asks for again (`qa__auto-recheck`), through a real QA process: an episode auto QA gave up on
 * (its message gone after max_deliver) is re-driven by the claim sweeper; one auto QA checked before its device's
 * robot type arrived is checked again against that robot type's profile. Events are published straight onto the
 * streams, as production and transfer do, so their order and fate are ours.
 */
describe('auto QA asked for again', () => {
  let system: System;
  let db: Kysely<any>;
  const org = uuidv7();
  const mcap = { object_key: '', size_bytes: 0, sha256: '' };

  beforeAll(async () => {
    system = await System.create();
    db = system.infra.database('qa').db;
    const bytes = await writeRecording();
    Object.assign(mcap, {
      object_key: `${org}/recheck.mcap`,
      size_bytes: bytes.byteLength,
      sha256: createHash('sha256').update(bytes).digest('hex'),
    });
    await new LocalBlobStore({ root: system.blobDir }).put(mcap.object_key, Readable.from([Buffer.from(bytes)]));
  }, 120_000);
  afterAll(() => system?.shutdown());

  const publish = async (def: EventDefinition, payload: unknown) => (await system.infra.publishEvent(def, payload)).id;

  const episode = (deviceId: string): Episode =>
    episodeRecord({ organization_id: org, device_id: deviceId, files: { mcap, sidecar: null } });

  const statusOf = async (id: string) =>
    (await sql<{ qa_status: string }>`select qa_status from episodes where id = ${id}`.execute(db)).rows[0]?.qa_status;
  const runsOf = async (id: string) =>
    (
      await sql<{ trigger: string; requested_by: string; status_after: string }>`
        select trigger, requested_by, status_after from runs where episode_id = ${id} order by finished_at`.execute(db)
    ).rows;
  /**
   * A QA process for one test, with that test's settings, stopped when it ends (each test starts from what it set
   * up).
   */
  async function withQa(env: Record<string, string>, test: (qa: ServiceProcess) => Promise<void>): Promise<void> {
    const qa = await system.startReplica('qa', env);
    try {
      await test(qa);
    } finally {
      qa.child.kill('SIGTERM');
      await qa.exited;
    }
  }
  const drained = (stream: 'PRODUCTION' | 'QA' | 'TRANSFER', durable: string) =>
    waitForConsumerDrained({
      jsm: system.infra.jsm,
      stream: system.infra.ns.stream(stream),
      durable,
      timeoutMs: 30_000,
    });

  it('re-drives an episode whose auto-check message is gone, and checks it once', async () => {
    const e = episode('arm-redrive');
    await publish(episodeEvents.created, { episode: e });
    // Auto QA gives up on it before QA ever checks it: the message leaves the consumer as after max_deliver.
    const autoCheck = await system.infra.js.consumers.get(
      system.infra.ns.stream('PRODUCTION'),
      qaConsumers.autoCheck.durable,
    );
    const msg = await autoCheck.next({ expires: 5_000 });
    expect(msg?.json()).toMatchObject({ episode: { id: e.id } });
    msg!.term();
    await drained('PRODUCTION', qaConsumers.autoCheck.durable);

    // A stalled episode is re-driven one second after anything touched it.
    await withQa({ QA_REDRIVE_AFTER_MS: '1000', QA_CLAIM_SWEEP_MS: '200' }, async (qa) => {
      // qa__episodes projects it (pending_qa); nothing else would ever check it.
      await waitFor(async () => (await statusOf(e.id)) === 'approved', {
        timeoutMs: 30_000,
        what: 'the re-driven auto QA to approve the episode',
      });
      await drained('QA', qaConsumers.autoRecheck.durable);
      expect(await runsOf(e.id)).toEqual([
        { trigger: 'auto', requested_by: 'auto-qa:stalled', status_after: 'approved' },
      ]);
      expect(qa.lines).toContainEqual(
        expect.objectContaining({ episode_id: e.id, msg: 'auto QA left the episode pending; check requested again' }),
      );
      const metrics = await (await fetch(`http://127.0.0.1:${qa.healthPort}/metrics`)).text();
      expect(metrics).toMatch(/^ferry_qa_auto_redriven_total\{[^}]*\} [1-9]/m);
    });
  });

  it('checks an episode again against its robot type’s profile when the device event arrives after auto QA', async () => {
    await sql`
      insert into profiles (id, organization_id, name, robot_type, rules)
      values (${uuidv7()}, ${org}, 'arms need a wrist camera', 'arm-v1',
              ${JSON.stringify({ ...GOOD_PROFILE, required_topics: ['/camera/wrist'] })}::jsonb)`.execute(db);
    const deviceId = `arm-${uuidv7().slice(-8)}`;
    const e = episode(deviceId);
    // Re-drive at its default (2 h): however late auto QA gets to the episode, the sweeper does not request it first,
    // so its first run is auto QA's own.
    await withQa({ QA_CLAIM_SWEEP_MS: '200' }, async () => {
      await publish(episodeEvents.created, { episode: e });
      // Auto QA overtakes the device event (another stream): no robot type, no profile, approved.
      await waitFor(async () => (await statusOf(e.id)) === 'approved', { timeoutMs: 30_000, what: 'auto QA' });

      await publish(deviceEvents.registered, {
        device: deviceRecord({ organization_id: org, device_id: deviceId, robot_type: 'arm-v1' }),
      });

      await waitFor(async () => (await statusOf(e.id)) === 'failed', {
        timeoutMs: 30_000,
        what: 'the episode to be checked again against the arm’s profile',
      });
      await drained('QA', qaConsumers.autoRecheck.durable);
      expect(await runsOf(e.id)).toEqual([
        { trigger: 'auto', requested_by: 'auto-qa', status_after: 'approved' },
        { trigger: 'auto', requested_by: 'auto-qa:robot_type_known', status_after: 'failed' },
      ]);
      const { rows } = await sql<{ payload: { reason: string } }>`
      select payload from outbox where event_type = ${qaEpisodeEvents.autoCheckRequested.type}
        and payload->>'episode_id' = ${e.id}`.execute(db);
      expect(rows.map((r) => r.payload.reason)).toEqual(['robot_type_known']);
    });
  });
});
