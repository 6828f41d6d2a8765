import { qaEpisodeEvents } from '@ferry/contracts';
import { createMetrics, type Metrics } from '@ferry/platform';
import { captureLogger, waitFor } from '@ferry/platform/testing';
import { sql } from 'kysely';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type QaFixture, qaFixture } from '../testing/qa-fixture.js';

describe('ClaimSweeper', () => {
  let f: QaFixture;
  beforeAll(async () => {
    f = await qaFixture();
  });
  afterAll(() => f?.cleanup());

  /** The org’s episodes, oldest first. */
  async function episodes(org: string) {
    const rows = await f.db
      .selectFrom('episodes')
      .select('id')
      .where('organization_id', '=', org)
      .orderBy('episode_created_at')
      .execute();
    return rows.map((r) => r.id);
  }
  const claim = (id: string, status: string, before: string, expires: string) =>
    sql`update episodes set qa_status = ${status}, claim_id = gen_random_uuid(), claimed_by = 'dead-replica',
          claim_expires_at = now() + ${expires}::interval, status_before_claim = ${before}
        where id = ${id}`.execute(f.db);
  const row = (id: string) => f.db.selectFrom('episodes').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  const changes = (id: string) =>
    f.db
      .selectFrom('outbox')
      .select('payload')
      .where('event_type', '=', qaEpisodeEvents.statusChanged.type)
      .where(sql<boolean>`payload->>'episode_id' = ${id}`)
      .execute();

  it('gives a dead checker’s lapsed claim back with the status it had, leaves live claims and a person’s status alone', async () => {
    const org = await f.seed(3, { status: 'pending_qa' });
    const [lapsed, live, reviewed] = await episodes(org);
    await claim(lapsed!, 'qa_running', 'pending_qa', '-1 second');
    await claim(live!, 'qa_running', 'pending_qa', '1 minute');
    // A person rejected this one while the (now dead) check held it.
    await claim(reviewed!, 'rejected', 'rejected', '-1 second');

    const released = await f.sweeper().sweep();

    expect(released).toBe(2);
    expect(await row(lapsed!)).toMatchObject({ qa_status: 'pending_qa', claim_id: null, claim_expires_at: null });
    expect((await changes(lapsed!)).map((c) => c.payload)).toMatchObject([
      { from: 'qa_running', to: 'pending_qa', cause: 'claim_released', run_id: null },
    ]);
    expect(await row(live!)).toMatchObject({ qa_status: 'qa_running', claimed_by: 'dead-replica' });
    expect(await changes(live!)).toEqual([]);
    expect(await row(reviewed!)).toMatchObject({ qa_status: 'rejected', claim_id: null, status_before_claim: null });
    expect(await changes(reviewed!)).toEqual([]);
    // The released episode can be checked again at once.
    const outcome = await f.runner.check({ episodeId: lapsed!, trigger: 'auto', requestedBy: 'auto-qa' });
    expect(outcome).toMatchObject({ kind: 'finished', status: 'approved' });
  });
});

describe('ClaimSweeper re-drive of auto QA', () => {
  // A schema per test: a sweep looks at every episode, so each test's counts are its own.
  let f: QaFixture;
  beforeEach(async () => {
    f = await qaFixture();
  });
  afterEach(() => f?.cleanup());

  const HOUR = 3_600_000;
  const AFTER = 2 * HOUR; // QA_REDRIVE_AFTER_MS's default, which the fixture keeps

  /** `n` episodes of a new organization, oldest first, with their status set `hoursAgo`. */
  async function episodes(statuses: { status: string; hoursAgo: number; claimed?: boolean }[]) {
    const org = await f.seed(statuses.length, { status: 'pending_qa' });
    const ids = await f.episodeIds(org);
    for (const [i, s] of statuses.entries()) {
      await sql`update episodes set qa_status = ${s.status}, status_changed_at = now() - ${`${s.hoursAgo} hours`}::interval,
                  claim_id = ${s.claimed ? sql`gen_random_uuid()` : null},
                  claim_expires_at = ${s.claimed ? sql`now() + interval '1 minute'` : null},
                  claimed_by = ${s.claimed ? 'live-replica' : null}
                where id = ${ids[i]!}`.execute(f.db);
    }
    return ids;
  }
  const requests = (id: string) => f.outboxEvents(qaEpisodeEvents.autoCheckRequested, id);
  const parse = (payload: unknown) => qaEpisodeEvents.autoCheckRequested.schema.parse(payload);
  const row = (id: string) => f.db.selectFrom('episodes').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  const plus = (at: Date, ms: number) => new Date(at.getTime() + ms);
  const counter = async (m: Metrics, name: string) =>
    (await m.registry.getSingleMetric(name)?.get())?.values[0]?.value ?? 0;

  it('asks auto QA again for an episode it left pending, once between two replicas sweeping at the same moment, and only that one', async () => {
    const [stalled, fresh, approved, rejected, running] = await episodes([
      { status: 'pending_qa', hoursAgo: 3 },
      { status: 'pending_qa', hoursAgo: 1 }, // auto QA may still be retrying it
      { status: 'approved', hoursAgo: 3 },
      { status: 'rejected', hoursAgo: 3 },
      { status: 'qa_running', hoursAgo: 3, claimed: true },
    ]);
    const log = captureLogger('qa');
    const metrics = createMetrics('qa-redrive');
    const replicas = [f.sweeper({ logger: log.logger, metrics }), f.sweeper({ logger: log.logger, metrics })];

    // The first replica's sweep has taken the stalled episode and is held before its request is written (the test
    // holds the outbox); the second sweeps meanwhile, on the database's clock, and finds nothing it may take.
    const outbox = await f.db.startTransaction().execute();
    let first: Promise<number> | undefined;
    try {
      await sql`lock table outbox in share mode`.execute(outbox);
      first = replicas[0]!.redrive();
      const pid = await f.backendPid(outbox);
      await waitFor(() => f.blocking(pid), { what: 'the first sweep to hold the episode', intervalMs: 10 });
      expect(await replicas[1]!.redrive()).toBe(0);
    } finally {
      await outbox.rollback().execute();
    }
    expect(await first).toBe(1);
    const [request] = await requests(stalled!);
    expect(await requests(stalled!)).toMatchObject([{ reason: 'stalled', redrive: 1 }]);
    for (const other of [fresh, approved, rejected, running]) expect(await requests(other!)).toEqual([]);
    const { redriven_at } = await row(stalled!);
    expect(redriven_at).not.toBeNull();
    expect(await counter(metrics, 'ferry_qa_auto_redriven_total')).toBe(1);
    expect(log.lines()).toContainEqual(
      expect.objectContaining({
        episode_id: stalled,
        redrive: 1,
        msg: 'auto QA left the episode pending; check requested again',
      }),
    );

    // Not again while that request waits unattempted, however long; the younger one's turn comes on its own age.
    const t0 = redriven_at!;
    expect(await replicas[0]!.redrive(t0)).toBe(0);
    expect(await replicas[1]!.redrive(plus(t0, AFTER - HOUR + 1_000))).toBe(1);
    expect(await requests(fresh!)).toMatchObject([{ reason: 'stalled', redrive: 1 }]);
    expect(await replicas[1]!.redrive(plus(t0, 3 * AFTER))).toBe(0);
    expect(await requests(stalled!)).toHaveLength(1);

    // qa__auto-recheck attempts it while the store is down: the episode is released, nothing recorded, and only now,
    // the request answered, is it re-driven again (QA_REDRIVE_AFTER_MS after that attempt).
    f.failReads();
    try {
      await expect(f.handlers.onAutoCheckRequested(parse(request!))).rejects.toMatchObject({ code: 'storage_error' });
    } finally {
      f.failReads(false);
    }
    expect(await row(stalled!)).toMatchObject({ qa_status: 'pending_qa', claim_id: null, last_run_id: null });
    expect(await replicas[1]!.redrive(plus(t0, 3 * AFTER))).toBe(1);
    expect((await requests(stalled!)).map((r) => r.redrive)).toEqual([1, 2]);
    for (const other of [approved, rejected, running]) expect(await requests(other!)).toEqual([]);

    // The request is handled as auto QA (qa__auto-recheck): the episode is checked, once.
    await f.handlers.onAutoCheckRequested(parse((await requests(stalled!))[1]!));
    expect(await row(stalled!)).toMatchObject({ qa_status: 'approved', claim_id: null });
    const runs = await f.db.selectFrom('runs').selectAll().where('episode_id', '=', stalled!).execute();
    expect(runs.map((r) => [r.trigger, r.requested_by])).toEqual([['auto', 'auto-qa:stalled']]);
    // The first request, delivered again, now finds nothing to do.
    await f.handlers.onAutoCheckRequested(parse(request!));
    expect(await f.db.selectFrom('runs').selectAll().where('episode_id', '=', stalled!).execute()).toHaveLength(1);
    // Checked now: never re-driven again.
    await replicas[0]!.redrive(plus(t0, 30 * AFTER));
    expect(await requests(stalled!)).toHaveLength(2);
  });

  it('does not re-request episodes whose request still waits behind a backlog; repeats one unanswered for QA_REDRIVE_UNANSWERED_MS', async () => {
    // A backlog on qa__auto-recheck that drains slower than QA_REDRIVE_AFTER_MS: nothing attempts the requests.
    const ids = await episodes(Array.from({ length: 5 }, () => ({ status: 'pending_qa', hoursAgo: 3 })));
    const log = captureLogger('qa');
    const metrics = createMetrics('qa-redrive-backlog');
    const sweeper = f.sweeper({ config: { QA_REDRIVE_MAX: 2 }, logger: log.logger, metrics });
    expect(await sweeper.redrive()).toBe(5);
    const t0 = (await row(ids[0]!)).redriven_at!;
    const unanswered = f.config.QA_REDRIVE_UNANSWERED_MS;
    for (let at = plus(t0, AFTER + 1_000); at < plus(t0, unanswered); at = plus(at, AFTER)) {
      expect(await sweeper.redrive(at)).toBe(0);
    }
    for (const id of ids) {
      expect(await row(id)).toMatchObject({ qa_status: 'pending_qa', redrive_count: 1 });
      expect(await requests(id)).toHaveLength(1);
    }
    expect(await counter(metrics, 'ferry_qa_auto_redrives_exhausted_total')).toBe(0);
    expect(log.lines().filter((l) => l.level === 'error')).toEqual([]);

    // Unanswered that long, a request is taken for lost (a purged stream, dead-lettered unattempted) and made again.
    expect(await sweeper.redrive(plus(t0, unanswered + 1_000))).toBe(5);
    for (const id of ids) expect((await requests(id)).map((r) => r.redrive)).toEqual([1, 2]);
  });

  it('gives up after QA_REDRIVE_MAX re-drives, logging the last as an error', async () => {
    const [stalled] = await episodes([{ status: 'pending_qa', hoursAgo: 3 }]);
    const log = captureLogger('qa');
    const metrics = createMetrics('qa-redrive-max');
    const sweeper = f.sweeper({ config: { QA_REDRIVE_MAX: 2 }, logger: log.logger, metrics });
    // Each re-drive's check fails the same way (the store is still down): attempted, released, nothing recorded.
    const attempt = async () => {
      f.failReads();
      try {
        const request = parse((await requests(stalled!)).at(-1)!);
        await expect(f.handlers.onAutoCheckRequested(request)).rejects.toMatchObject({ code: 'storage_error' });
      } finally {
        f.failReads(false);
      }
    };
    expect(await sweeper.redrive()).toBe(1);
    const t0 = (await row(stalled!)).redriven_at!;
    await attempt();
    expect(await sweeper.redrive(plus(t0, 2 * AFTER))).toBe(1);
    await attempt();
    expect(await sweeper.redrive(plus(t0, 5 * AFTER))).toBe(0);
    expect((await requests(stalled!)).map((r) => r.redrive)).toEqual([1, 2]);
    expect(await row(stalled!)).toMatchObject({ qa_status: 'pending_qa', redrive_count: 2 });
    expect(await counter(metrics, 'ferry_qa_auto_redriven_total')).toBe(2);
    expect(await counter(metrics, 'ferry_qa_auto_redrives_exhausted_total')).toBe(1);
    expect(log.lines()).toContainEqual(
      expect.objectContaining({
        level: 'error',
        episode_id: stalled,
        redrive: 2,
        msg: 'auto QA re-driven for the last time; if it fails again the episode needs a person',
      }),
    );
  });
});
