import { bulkRunEvents, STREAMS } from '@ferry/contracts';
import { OutboxRelay, provisionTopology } from '@ferry/platform';
import { silentLogger, streamMessages, waitFor, waitForEventsSettled } from '@ferry/platform/testing';
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

  const ended = (id: string, timeoutMs = 30_000) =>
    waitFor(
      async () => {
        const row = await runRow(id);
        return row && row.status !== 'queued' && row.status !== 'running' && row;
      },
      { timeoutMs, what: `run ${id} to end` },
    );

  it('keeps a live run going after a database outage longer than BULK_STALE_MS: the replica heart-beats before it sweeps', async () => {
    const org = await f.seed(3);
    const replica = f.worker({ QA_WORKER_ID: 'replica-outage', BULK_STALE_MS: 300 });
    // Stopped whatever happens: a worker left running would claim the items of later tests' runs.
    try {
      await replica.poll(); // the replica is up before the run exists
      const run = await f.tx((trx) => f.bulk.execute(actorOf(org), {}, trx));
      // Postgres is away from the replica until the run's only sign of life (its creation) is older than
      // BULK_STALE_MS by the database's clock; then the replica's next poll gets through.
      await waitFor(
        async () => {
          const { rows } = await sql<{ stale: boolean }>`
            select now() - created_at > interval '300 milliseconds' as stale from bulk_runs where id = ${run.run_id}`.execute(
            f.db,
          );
          return rows[0]!.stale;
        },
        { what: 'the run to look abandoned' },
      );

      await replica.poll();

      expect((await runRow(run.run_id))?.status).not.toBe('interrupted');
      expect(await ended(run.run_id)).toMatchObject({ status: 'completed', processed_count: 3, passed_count: 3 });
    } finally {
      await replica.onModuleDestroy();
    }
  });

  it('never adopts a run every replica abandoned, even when one restarts within BULK_STALE_MS: the periodic sweep interrupts it', async () => {
    const org = await f.seed(30);
    f.paceReads(50);
    const gone = f.worker({ QA_WORKER_ID: 'replica-gone', BULK_CONCURRENCY: 1 });
    const restarted = f.worker({ QA_WORKER_ID: 'replica-restarted', BULK_CONCURRENCY: 1, BULK_STALE_MS: 5_000 });
    try {
      await gone.onApplicationBootstrap();
      const run = await f.tx((trx) => f.bulk.execute(actorOf(org), {}, trx));
      await waitFor(async () => ((await runRow(run.run_id))?.processed_count ?? 0) >= 2, { what: 'the run to move' });
      await gone.onModuleDestroy(); // the only replica stops: nobody beats the run any more
      const atStop = (await runRow(run.run_id))!;
      await restarted.onApplicationBootstrap();
      // Back within the window: its startup sweep left the run alone (what it does with it is the point here).
      expect((await runRow(run.run_id))?.status).toBe('running');
      const end = await ended(run.run_id);
      expect(end).toMatchObject({ status: 'interrupted', processed_count: atStop.processed_count });
      expect(end.error_message).toMatch(/no QA worker heart-beat for 5000 ms/);
      // The restarted replica never beat it (nor checked an item of it), and ended it only once the window had passed.
      const beats = await f.db
        .selectFrom('bulk_run_workers')
        .select(['worker_id', 'heartbeat_at'])
        .where('run_id', '=', run.run_id)
        .execute();
      expect(beats.map((b) => b.worker_id)).toEqual(['replica-gone']);
      expect(end.finished_at!.getTime() - beats[0]!.heartbeat_at.getTime()).toBeGreaterThanOrEqual(5_000);
    } finally {
      f.paceReads(0);
      await gone.onModuleDestroy(); // a second stop is a no-op
      await restarted.onModuleDestroy();
    }
  });

  it('joins a run alive on another replica: a replica started mid-run checks items of it too', async () => {
    const org = await f.seed(30);
    f.paceReads(50);
    const first = f.worker({ QA_WORKER_ID: 'replica-first', BULK_CONCURRENCY: 1 });
    const second = f.worker({ QA_WORKER_ID: 'replica-second', BULK_CONCURRENCY: 1 });
    try {
      await first.onApplicationBootstrap();
      const run = await f.tx((trx) => f.bulk.execute(actorOf(org), {}, trx));
      await waitFor(async () => ((await runRow(run.run_id))?.processed_count ?? 0) >= 2, { what: 'the run to move' });
      await second.onApplicationBootstrap(); // started after the run, which it saw only through the first's heart-beats
      expect(await ended(run.run_id, 60_000)).toMatchObject({ status: 'completed', processed_count: 30 });
      const byWorker = await f.db
        .selectFrom('bulk_run_items')
        .select(['claimed_by', sql<number>`count(*)::int`.as('n')])
        .where('run_id', '=', run.run_id)
        .groupBy('claimed_by')
        .orderBy('claimed_by')
        .execute();
      expect(byWorker.map((w) => w.claimed_by)).toEqual(['replica-first', 'replica-second']);
    } finally {
      f.paceReads(0);
      await first.onModuleDestroy();
      await second.onModuleDestroy();
    }
  });

  it('checks an item taken over from a dead worker whose episode claim outlives its item claim, rather than skipping it', async () => {
    const org = await f.seed(1);
    const replica = f.worker({ QA_WORKER_ID: 'replica-takeover' });
    try {
      await replica.poll(); // up before the run exists: the run is its to work on
      const run = await f.tx((trx) => f.bulk.execute(actorOf(org), {}, trx));
      // A worker died mid-check: its item claim has just lapsed, its claim on the episode (renewed a moment later)
      // has not yet.
      await sql`
        update episodes set qa_status = 'qa_running', status_before_claim = 'approved', claim_id = gen_random_uuid(),
                            claimed_by = 'replica-dead', claim_expires_at = now() + interval '1500 milliseconds'
        where organization_id = ${org}`.execute(f.db);
      await sql`
        update bulk_run_items set status = 'claimed', claimed_by = 'replica-dead', claim_token = gen_random_uuid(),
                                  claim_expires_at = now() - interval '1 millisecond'
        where run_id = ${run.run_id}`.execute(f.db);
      await replica.poll();
      expect(await ended(run.run_id)).toMatchObject({ status: 'completed', passed_count: 1, skipped_count: 0 });
      const runs = await f.db.selectFrom('runs').select('id').where('bulk_run_id', '=', run.run_id).execute();
      expect(runs).toHaveLength(1);
    } finally {
      await replica.onModuleDestroy();
    }
  });

  it('checks the episodes matched at execute only: one created afterwards, matching the same filters, is not part of the run', async () => {
    const org = await f.seed(3);
    const replica = f.worker({ QA_WORKER_ID: 'replica-fixed-set', BULK_CONCURRENCY: 1 });
    f.paceReads(200); // the run is still going when the new episode arrives
    try {
      await replica.onApplicationBootstrap();
      const run = await f.tx((trx) => f.bulk.execute(actorOf(org), {}, trx));
      const before = await f.db.selectFrom('episodes').select('id').where('organization_id', '=', org).execute();
      await f.seed(2, { org });
      expect((await runRow(run.run_id))?.status).not.toBe('completed');
      expect(await ended(run.run_id)).toMatchObject({ status: 'completed', total_count: 3, processed_count: 3 });
      const checked = await f.db
        .selectFrom('runs')
        .select('episode_id')
        .where('bulk_run_id', '=', run.run_id)
        .execute();
      expect(checked.map((r) => r.episode_id).sort()).toEqual(before.map((e) => e.id).sort());
    } finally {
      f.paceReads(0);
      await replica.onModuleDestroy();
    }
  });

  it('shares a replica’s slots between organizations: two runs started together both move before either ends', async () => {
    const [a, b] = [await f.seed(12), await f.seed(12)];
    // One slot and paced reads: the tightest case, where handing the oldest run every free slot would keep
    // the other at 0 % until the first one had nothing left.
    f.paceReads(20);
    const replica = f.worker({ QA_WORKER_ID: 'replica-fair', BULK_CONCURRENCY: 1 });
    // Both rows read in one statement: one moment of both runs.
    const snapshots: { id: string; status: string; processed_count: number }[][] = [];
    try {
      await replica.onApplicationBootstrap();
      const runA = await f.tx((trx) => f.bulk.execute(actorOf(a), {}, trx));
      const runB = await f.tx((trx) => f.bulk.execute(actorOf(b), {}, trx));
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
    } finally {
      await replica.onModuleDestroy();
      f.paceReads(0);
    }
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
      let runId: string;
      try {
        await replica.onApplicationBootstrap();
        const run = await f.tx((trx) => f.bulk.execute(actorOf(org), {}, trx));
        runId = run.run_id;
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
        .where('run_id', '=', runId)
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
      const runs = await f.db.selectFrom('runs').select('id').where('bulk_run_id', '=', runId).execute();
      expect(runs).toEqual([]);
    });

    it('lets a cancel complete: the run ends cancelled once the items in flight at the cancel are abandoned, each counted', async () => {
      const org = await f.seed(6);
      f.hangReads();
      const replica = f.worker({
        QA_WORKER_ID: 'replica-hung-cancel',
        BULK_CONCURRENCY: 2,
        BULK_ITEM_TIMEOUT_MS: 1_000,
      });
      const actor = actorOf(org);
      const cancel = await f.db.startTransaction().execute();
      try {
        await replica.onApplicationBootstrap();
        const run = await f.tx((trx) => f.bulk.execute(actor, {}, trx));
        await waitFor(async () => (await f.bulkRuns.inFlight(f.db, run.run_id)) === 2, { what: 'two items in flight' });
        const cancelling = await f.bulk.cancel(actor, run.run_id, cancel);
        // What the cancel leaves to finish, read in its transaction: the run row it locked holds every count (and
        // every claim) back until it commits. How many items timed out before it depends on this machine's speed.
        const { rows } = await sql<{ processed: number; in_flight: number }>`
          select r.processed_count as processed,
                 (select count(*)::int from bulk_run_items i
                  where i.run_id = r.id and i.status = 'claimed' and i.claim_expires_at > now()) as in_flight
          from bulk_runs r where r.id = ${run.run_id}`.execute(cancel);
        await cancel.commit().execute();
        const atCancel = rows[0]!;
        expect(cancelling.status).toBe('running'); // checks hang: it waits for them
        expect(atCancel.in_flight).toBeGreaterThan(0);
        const ended = await settled(run.run_id);
        const processed = atCancel.processed + atCancel.in_flight;
        expect(ended).toMatchObject({
          status: 'cancelled',
          processed_count: processed,
          processing_failed_count: processed,
        });
        expect(await f.bulkRuns.inFlight(f.db, run.run_id)).toBe(0);
      } finally {
        await cancel
          .rollback()
          .execute()
          .catch(() => undefined);
        f.hangReads(false);
        await replica.onModuleDestroy();
      }
    });
  });

  it('counts an item whose recording fails in the database as the time limit runs out with that failure, not as a time-out', async () => {
    const org = await f.seed(1);
    const limitMs = 1_000;
    // The run's insert waits for a lock the test holds, then fails: the check has read the recording and is
    // recording it when its time is up.
    await sql`
      create function refuse_run_late() returns trigger language plpgsql as $$
      begin
        perform pg_advisory_xact_lock(hashtext('refuse_run_late'));
        raise exception 'run refused by the database (test)';
      end $$`.execute(f.db);
    await sql`
      create trigger runs_refused_late before insert on runs for each row
      when (new.organization_id = ${sql.lit(org)}::uuid) execute function refuse_run_late()`.execute(f.db);
    const hold = await f.db.startTransaction().execute();
    const replica = f.worker({ QA_WORKER_ID: 'replica-db-fails-late', BULK_ITEM_TIMEOUT_MS: limitMs });
    try {
      await sql`select pg_advisory_xact_lock(hashtext('refuse_run_late'))`.execute(hold);
      await replica.onApplicationBootstrap();
      const run = await f.tx((trx) => f.bulk.execute(actorOf(org), {}, trx));
      const pid = await f.backendPid(hold);
      await waitFor(() => f.blocking(pid), { what: 'the run to be recorded, waiting on the lock' });
      // The check's time limit started before its claim, which stamped the episode: wait until, by the database's
      // clock, the limit has passed since (the timer cannot be driven; its deadline can be read).
      await waitFor(
        async () => {
          const { rows } = await sql<{ past: boolean }>`
            select clock_timestamp() > status_changed_at + ${`${limitMs} milliseconds`}::interval as past
            from episodes where organization_id = ${org}`.execute(f.db);
          return rows[0]!.past;
        },
        { what: 'the time limit to pass while the run is being recorded' },
      );
      await hold.commit().execute();
      expect(await ended(run.run_id)).toMatchObject({ status: 'completed', processing_failed_count: 1 });
      const [item] = await f.db
        .selectFrom('bulk_run_items')
        .select(['outcome', 'error'])
        .where('run_id', '=', run.run_id)
        .execute();
      expect(item).toEqual({ outcome: 'processing_failed', error: 'run refused by the database (test)' });
      expect(
        await f.db
          .selectFrom('episodes')
          .select(['qa_status', 'claim_id'])
          .where('organization_id', '=', org)
          .execute(),
      ).toEqual([{ qa_status: 'approved', claim_id: null }]);
    } finally {
      await hold
        .rollback()
        .execute()
        .catch(() => undefined);
      await replica.onModuleDestroy();
      await sql`drop trigger runs_refused_late on runs`.execute(f.db);
      await sql`drop function refuse_run_late()`.execute(f.db);
    }
  });

  it('publishes exactly one terminal event for a run: a cancel or a sweep after it adds nothing', async () => {
    const org = await f.seed(3);
    const actor = actorOf(org);
    const replica = f.worker({ QA_WORKER_ID: 'replica-terminal' });
    let run: Awaited<ReturnType<typeof f.bulk.execute>>;
    let done: NonNullable<Awaited<ReturnType<typeof runRow>>>;
    try {
      await replica.onApplicationBootstrap();
      run = await f.tx((trx) => f.bulk.execute(actor, {}, trx));
      done = await waitFor(async () => {
        const row = await runRow(run.run_id);
        return row && row.status === 'completed' && row;
      });
    } finally {
      await replica.onModuleDestroy();
    }

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

  it('publishes at most 2 progress events in any one second of a run on the stream, the first one included, with two replicas counting', async () => {
    // The real path to subscribers: QA's stream, and an outbox relay publishing into it.
    await provisionTopology(f.infra.jsm, f.infra.ns);
    const relay = new OutboxRelay({
      db: f.db,
      databaseUrl: f.infra.databaseUrl,
      schema: f.infra.schema('qa'),
      js: f.infra.js,
      logger: silentLogger(),
    });
    const replicas = ['replica-progress-1', 'replica-progress-2'].map((id) =>
      f.worker({ QA_WORKER_ID: id, BULK_CONCURRENCY: 1 }),
    );
    try {
      await relay.start();
      const org = await f.seed(80);
      // 80 items, one at a time on each of two replicas, each read held back 50 ms: the run lasts 2 s or more on any
      // machine, long enough for the throttle to matter.
      f.paceReads(50);
      for (const r of replicas) await r.onApplicationBootstrap();
      const run = await f.tx((trx) => f.bulk.execute(actorOf(org), {}, trx));
      expect(await ended(run.run_id, 60_000)).toMatchObject({ status: 'completed', processed_count: 80 });
      for (const r of replicas) await r.onModuleDestroy(); // now: the stream is read once nothing writes to it
      const byWorker = await f.db
        .selectFrom('bulk_run_items')
        .select('claimed_by')
        .distinct()
        .where('run_id', '=', run.run_id)
        .orderBy('claimed_by')
        .execute();
      expect(byWorker.map((w) => w.claimed_by)).toEqual(['replica-progress-1', 'replica-progress-2']);

      const stream = f.infra.ns.stream(STREAMS.QA.name);
      await waitForEventsSettled({ jsm: f.infra.jsm, stream, outboxes: [f.db] });
      const subject = f.outbox.subjectFor(bulkRunEvents.progress, run.run_id);
      const sent = (await streamMessages(f.infra.jsm, stream)).filter((m) => m.subject === subject);
      expect(sent.length).toBeGreaterThanOrEqual(3); // the run lasted long enough for the throttle to matter
      // When the server stored each one (what subscribers go by), to the nanosecond.
      const at = sent.map((m) => storedAtNanos(m.timestamp));
      for (let i = 2; i < at.length; i++) expect(at[i]! - at[i - 2]!).toBeGreaterThanOrEqual(1_000_000_000n);
      // Every progress event carries a newer snapshot than the one before.
      const versions = sent.map((m) => (m.json() as { run: { version: number } }).run.version);
      expect(versions).toEqual([...new Set(versions)].sort((a, b) => a - b));
    } finally {
      f.paceReads(0);
      for (const r of replicas) await r.onModuleDestroy();
      await relay.stop();
    }
  });
});

/** A JetStream timestamp (RFC 3339 with nanoseconds) as nanoseconds since the epoch. */
function storedAtNanos(timestamp: string): bigint {
  const m = /^(.+T\d\d:\d\d:\d\d)(?:\.(\d+))?Z$/.exec(timestamp);
  if (!m) throw new Error(`not a JetStream timestamp: ${timestamp}`);
  return BigInt(Date.parse(`${m[1]}Z`)) * 1_000_000n + BigInt((m[2] ?? '').padEnd(9, '0').slice(0, 9));
}
