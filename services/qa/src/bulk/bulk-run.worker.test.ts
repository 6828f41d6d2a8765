import { bulkRunEvents } from '@ferry/contracts';
import { waitFor } from '@ferry/platform/testing';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { actorOf, type QaFixture, qaFixture } from '../testing/qa-fixture.js';

describe('BulkRunWorker', () => {
  let f: QaFixture;
  beforeAll(async () => {
    f = await qaFixture();
  });
  afterAll(() => f?.cleanup());

  const runRow = (id: string) => f.bulkRuns.find(f.db, id);

  it('keeps a live run going after a database outage longer than BULK_STALE_MS: the replica heart-beats before it sweeps', async () => {
    const org = await f.seed(3);
    const run = await f.tx((trx) => f.bulk.execute(actorOf(org), {}, trx));
    const replica = f.worker({ QA_WORKER_ID: 'replica-outage' });
    // The replica worked on the run, then Postgres was away for far longer than BULK_STALE_MS: every
    // heart-beat of the run (and its creation) lies that far back when the replica's next poll gets through.
    await sql`update bulk_runs set created_at = now() - interval '1 hour' where id = ${run.run_id}`.execute(f.db);
    await sql`
      insert into bulk_run_workers (run_id, worker_id, heartbeat_at)
      values (${run.run_id}, 'replica-outage', now() - interval '1 hour')`.execute(f.db);

    await replica.poll();

    expect((await runRow(run.run_id))?.status).not.toBe('interrupted');
    const done = await waitFor(async () => {
      const row = await runRow(run.run_id);
      return row && row.status !== 'queued' && row.status !== 'running' && row;
    });
    expect(done).toMatchObject({ status: 'completed', processed_count: 3, passed_count: 3 });
    await replica.onModuleDestroy();
  });

  it('shares a replica’s slots between organizations: two runs started together both move before either ends', async () => {
    const [a, b] = [await f.seed(12), await f.seed(12)];
    // One slot and paced reads: the tightest case, where handing the oldest run every free slot would keep
    // the other at 0 % until the first one had nothing left.
    f.paceReads(20);
    const replica = f.worker({ QA_WORKER_ID: 'replica-fair', BULK_CONCURRENCY: 1 });
    const runA = await f.tx((trx) => f.bulk.execute(actorOf(a), {}, trx));
    const runB = await f.tx((trx) => f.bulk.execute(actorOf(b), {}, trx));
    await replica.onApplicationBootstrap();
    // Both rows read in one statement: one moment of both runs.
    const snapshots: { id: string; status: string; processed_count: number }[][] = [];
    await waitFor(
      async () => {
        const rows = await f.db
          .selectFrom('bulk_runs')
          .select(['id', 'status', 'processed_count'])
          .where('id', 'in', [runA.run_id, runB.run_id])
          .execute();
        snapshots.push(rows);
        return rows.every((r) => r.status === 'completed');
      },
      { timeoutMs: 60_000, intervalMs: 20, what: 'both runs to complete' },
    );
    await replica.onModuleDestroy();
    f.paceReads(0);
    const bothMoving = snapshots.filter((rows) => rows.every((r) => r.status === 'running' && r.processed_count > 0));
    expect(bothMoving.length).toBeGreaterThan(0);
    // Neither was kept waiting while the other drained: when the first ended, the second was nearly done too.
    const firstEnd = snapshots.find((rows) => rows.some((r) => r.status === 'completed'))!;
    expect(Math.min(...firstEnd.map((r) => r.processed_count))).toBeGreaterThanOrEqual(10);
  });

  describe('an item whose check hangs', () => {
    const settled = (id: string) =>
      waitFor(
        async () => {
          const row = await runRow(id);
          return row && row.status !== 'queued' && row.status !== 'running' && row;
        },
        { timeoutMs: 30_000, what: `run ${id} to end` },
      );

    it('is abandoned after BULK_ITEM_TIMEOUT_MS: its read closed, its episode given back, counted processing_failed with the reason', async () => {
      const org = await f.seed(3);
      const streams = f.hangReads();
      const replica = f.worker({ QA_WORKER_ID: 'replica-hung', BULK_CONCURRENCY: 2, BULK_ITEM_TIMEOUT_MS: 1_000 });
      await replica.onApplicationBootstrap();
      const run = await f.tx((trx) => f.bulk.execute(actorOf(org), {}, trx));
      try {
        // The lease is 3 s and renewed every second: without the limit these claims would be held forever.
        const done = await settled(run.run_id);
        expect(done).toMatchObject({ status: 'completed', processed_count: 3, processing_failed_count: 3 });
      } finally {
        f.hangReads(false);
        await replica.onModuleDestroy();
      }
      expect(streams.length).toBeGreaterThanOrEqual(3);
      expect(streams.every((s) => s.destroyed)).toBe(true);
      const items = await f.db
        .selectFrom('bulk_run_items')
        .select(['status', 'outcome', 'error'])
        .where('run_id', '=', run.run_id)
        .execute();
      expect(items).toHaveLength(3);
      for (const item of items) {
        expect(item).toMatchObject({ status: 'done', outcome: 'processing_failed' });
        expect(item.error).toMatch(/no result within 1000 ms \(BULK_ITEM_TIMEOUT_MS\)/);
      }
      // Nothing recorded, every episode back to its status and free for the next check.
      const episodes = await f.db
        .selectFrom('episodes')
        .select(['qa_status', 'claim_id', 'last_run_id'])
        .where('organization_id', '=', org)
        .execute();
      expect(episodes).toEqual(Array(3).fill({ qa_status: 'approved', claim_id: null, last_run_id: null }));
      const runs = await f.db.selectFrom('runs').select('id').where('bulk_run_id', '=', run.run_id).execute();
      expect(runs).toEqual([]);
    });

    it('lets a cancel complete: the run ends cancelled once the hung items are abandoned', async () => {
      const org = await f.seed(6);
      f.hangReads();
      const replica = f.worker({
        QA_WORKER_ID: 'replica-hung-cancel',
        BULK_CONCURRENCY: 2,
        BULK_ITEM_TIMEOUT_MS: 1_000,
      });
      await replica.onApplicationBootstrap();
      const actor = actorOf(org);
      const run = await f.tx((trx) => f.bulk.execute(actor, {}, trx));
      try {
        await waitFor(async () => (await f.bulkRuns.inFlight(f.db, run.run_id)) === 2, { what: 'two items in flight' });
        const cancelling = await f.tx((trx) => f.bulk.cancel(actor, run.run_id, trx));
        expect(cancelling.status).toBe('running'); // two checks hang: it waits for them
        const ended = await settled(run.run_id);
        expect(ended).toMatchObject({ status: 'cancelled', processed_count: 2, processing_failed_count: 2 });
      } finally {
        f.hangReads(false);
        await replica.onModuleDestroy();
      }
    });
  });

  it('publishes exactly one terminal event for a run: a cancel or a sweep after it adds nothing', async () => {
    const org = await f.seed(3);
    const actor = actorOf(org);
    const replica = f.worker({ QA_WORKER_ID: 'replica-terminal' });
    const run = await f.tx((trx) => f.bulk.execute(actor, {}, trx));
    await replica.onApplicationBootstrap();
    const done = await waitFor(async () => {
      const row = await runRow(run.run_id);
      return row && row.status === 'completed' && row;
    });
    await replica.onModuleDestroy();

    // Afterwards: a cancel answers the run as it is, and a sweep finds every heart-beat of it stale.
    expect(await f.tx((trx) => f.bulk.cancel(actor, run.run_id, trx))).toMatchObject({ status: 'completed' });
    await sql`update bulk_run_workers set heartbeat_at = now() - interval '1 hour' where run_id = ${run.run_id}`.execute(
      f.db,
    );
    await f.worker({ QA_WORKER_ID: 'replica-sweeper' }).sweep();
    expect(await runRow(run.run_id)).toEqual(done);
    const events = await f.db
      .selectFrom('outbox')
      .select(['subject', 'payload'])
      .where('subject', 'in', [
        f.outbox.subjectFor(bulkRunEvents.progress, run.run_id),
        f.outbox.subjectFor(bulkRunEvents.finished, run.run_id),
      ])
      .execute();
    const snapshot = (e: (typeof events)[number]) => (e.payload as { run: { status: string; version: number } }).run;
    const finished = events.filter((e) => e.subject === f.outbox.subjectFor(bulkRunEvents.finished, run.run_id));
    expect(finished.map((e) => snapshot(e).status)).toEqual(['completed']);
    // Nothing newer than it: it carries the run's last version, every progress event an older one.
    expect(snapshot(finished[0]!).version).toBe(done.version);
    expect(events.filter((e) => e !== finished[0]).every((e) => snapshot(e).version < done.version)).toBe(true);
  });

  it('publishes at most 2 progress events in any one second of a run, the first one included', async () => {
    const org = await f.seed(40);
    // 40 items one at a time, each read held back 50 ms: the run lasts 2 s or more on any machine, long
    // enough for the throttle to matter (unpaced, a fast machine ran the whole run inside one second).
    f.paceReads(50);
    const replica = f.worker({ QA_WORKER_ID: 'replica-progress', BULK_CONCURRENCY: 1 });
    const run = await f.tx((trx) => f.bulk.execute(actorOf(org), {}, trx));
    await replica.onApplicationBootstrap();
    const done = await waitFor(
      async () => {
        const row = await runRow(run.run_id);
        return row && row.status === 'completed' && row;
      },
      { timeoutMs: 60_000 },
    );
    await replica.onModuleDestroy();
    f.paceReads(0);
    expect(done.processed_count).toBe(40);
    const sent = await f.db
      .selectFrom('outbox')
      .select(['created_at', 'payload'])
      .where('subject', '=', f.outbox.subjectFor(bulkRunEvents.progress, run.run_id))
      .orderBy('created_at')
      .execute();
    const at = sent.map((e) => e.created_at.getTime());
    expect(at.length).toBeGreaterThanOrEqual(3); // the run lasted long enough for the throttle to matter
    for (let i = 2; i < at.length; i++) expect(at[i]! - at[i - 2]!).toBeGreaterThanOrEqual(1_000);
    // Every progress event carries a newer snapshot than the one before.
    const versions = sent.map((e) => (e.payload as { run: { version: number } }).run.version);
    expect(versions).toEqual([...new Set(versions)].sort((a, b) => a - b));
  });
});
