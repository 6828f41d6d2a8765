import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  type Actor,
  type BulkQaFilters,
  type BulkRun,
  bulkRunEvents,
  bulkRunRpc,
  type RpcCallContext,
  STREAMS,
} from '@ferry/contracts';
import { LocalBlobStore, newId, RpcClient } from '@ferry/platform';
import { silentLogger, waitFor, waitForEventsSettled } from '@ferry/platform/testing';
import { type Kysely, sql } from 'kysely';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeRecording } from '../../services/qa/src/checks/testing/mcap-corpus.js';
import { exitWithin, type ServiceProcess, System } from '../support/system.js';

/** The stale threshold well above the lease: a dead replica's items are taken over long before a run could go stale. */
const STALE_MS = 6_000;

// Each test's timeout is the sum of the bounded waits it may spend, plus 30 s for what they leave out (RPCs, queries,
// seeding): startReplica 20 s, exitWithin 20 s, follow() 120 s unless told otherwise, and each waitFor's own. Never the
// 60 s default, which several of these waits alone reach: a test that times out mid-way leaves state the next share.
const FAST = {
  BULK_POLL_MS: '100',
  QA_CLAIM_LEASE_MS: '1000',
  BULK_STALE_MS: String(STALE_MS),
  BULK_CONCURRENCY: '4',
  // Room beside the four checks, whose claims may wait on an episode lock the kill test holds.
  DB_POOL_MAX: '8',
};

/**
 * Bulk QA runs on real QA replicas (DESIGN §7). The episodes are seeded straight into QA's projection
 * — 2,000 rows in one statement, all pointing at one real recording in the blob store — because the
 * projection's feed from production's events is proven elsewhere (qa.e2e) and 2,000 uploads would
 * take minutes.
 */
describe('bulk QA runs', () => {
  let system: System;
  let rpc: RpcClient;
  let mcapKey: string;
  let mcapSha: string;
  let mcapSize: number;
  const replicas: ServiceProcess[] = [];
  /** Each replica's QA_WORKER_ID: its name in claims and heart-beats. */
  const workerIds = new Map<ServiceProcess, string>();

  beforeAll(async () => {
    system = await System.create();
    const bytes = await writeRecording();
    mcapKey = `fixtures/${newId()}.mcap`;
    mcapSha = createHash('sha256').update(bytes).digest('hex');
    mcapSize = bytes.byteLength;
    await new LocalBlobStore({ root: system.blobDir }).put(mcapKey, Readable.from([Buffer.from(bytes)]));
    rpc = new RpcClient({ nc: system.infra.nc, ns: system.infra.ns, logger: silentLogger(), timeoutMs: 30_000 });
    qa = system.infra.database('qa').db;
  }, 120_000);
  afterAll(() => system?.shutdown());

  async function replica(env: Record<string, string> = {}) {
    const id = `qa-e2e-${replicas.length + 1}`;
    const p = await system.startReplica('qa', { ...FAST, QA_WORKER_ID: id, ...env });
    replicas.push(p);
    workerIds.set(p, id);
    return p;
  }

  let qa: Kysely<any>;
  const qaDb = () => qa;

  /** Kills every replica still alive (at most two in these tests: 2 × 20 s). */
  async function killAll() {
    for (const p of alive()) {
      p.child.kill('SIGKILL');
      await exitWithin(p);
    }
  }

  /** How long since anyone heart-beat the run, by the database's clock. */
  async function silentForMs(runId: string): Promise<number> {
    const { rows } = await sql<{ ms: number }>`
      select extract(epoch from (now() - max(heartbeat_at))) * 1000 as ms
      from bulk_run_workers where run_id = ${runId}`.execute(qaDb());
    return Number(rows[0]!.ms);
  }

  async function lastBeatAt(runId: string): Promise<Date> {
    const { rows } = await sql<{ at: Date }>`
      select max(heartbeat_at) as at from bulk_run_workers where run_id = ${runId}`.execute(qaDb());
    return rows[0]!.at;
  }

  /** The workers that ever heart-beat the run, and those that finished an item of it. */
  async function workersOf(runId: string) {
    const beat = await sql<{ worker_id: string }>`
      select worker_id from bulk_run_workers where run_id = ${runId} order by worker_id`.execute(qaDb());
    const checked = await sql<{ claimed_by: string }>`
      select distinct claimed_by from bulk_run_items where run_id = ${runId} and status = 'done'
      order by claimed_by`.execute(qaDb());
    return { beat: beat.rows.map((r) => r.worker_id), checked: checked.rows.map((r) => r.claimed_by) };
  }

  /** The run's progress events as subscribers get them: from the QA stream, with when the server stored each (ns). */
  async function progressOnStream(runId: string): Promise<{ at: bigint; version: number }[]> {
    const { js, ns } = system.infra;
    const stream = ns.stream(STREAMS.QA.name);
    const subject = ns.subject(`${bulkRunEvents.progress.type}.${runId}`);
    const consumer = await js.consumers.get(stream, { filter_subjects: subject });
    const out: { at: bigint; version: number }[] = [];
    try {
      if ((await consumer.info(false)).num_pending === 0) return out;
      const messages = await consumer.consume();
      for await (const m of messages) {
        out.push({ at: m.timestampNanos, version: (m.json() as { run: BulkRun }).run.version });
        if (m.info.pending === 0) break;
      }
      return out;
    } finally {
      await consumer.delete().catch(() => undefined);
    }
  }

  /** Every episode of the run with the number of QA runs the bulk run recorded for it. */
  async function runsPerEpisode(runId: string) {
    const { rows } = await sql<{ episode_id: string; runs: number }>`
      select i.episode_id, count(r.id)::int as runs
      from bulk_run_items i left join runs r on r.episode_id = i.episode_id and r.bulk_run_id = i.run_id
      where i.run_id = ${runId} group by i.episode_id`.execute(qaDb());
    return rows;
  }

  const alive = () => replicas.filter((p) => p.child.exitCode === null && p.child.signalCode === null);

  /** Each test states the replicas it needs, whatever an earlier one left running. */
  async function ensureReplicas(n: number) {
    while (alive().length < n) await replica();
    return alive();
  }

  const call = (org: string): RpcCallContext => {
    const actor: Actor = { kind: 'user', sub: 'bulk-tester', org, role: 'operator' };
    return { request_id: `bulk-${newId()}`, actor };
  };

  /** `n` approved episodes of a fresh organization in QA's projection. */
  async function seed(n: number, options: { org?: string; status?: string } = {}) {
    const org = options.org ?? uuidv7();
    const db = qaDb();
    const mcap = JSON.stringify({ object_key: mcapKey, size_bytes: mcapSize, sha256: mcapSha });
    await sql`
      insert into episodes (id, organization_id, task_id, order_id, scene_id, batch_id, device_id, upload_id, mcap,
                            episode_created_at, qa_status)
      select gen_random_uuid(), ${org}::uuid, gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), gen_random_uuid(),
             'arm-1', gen_random_uuid(), ${mcap}::jsonb, now() - (i || ' seconds')::interval, ${options.status ?? 'approved'}
      from generate_series(1, ${n}) as i`.execute(db);
    return org;
  }

  const invariant = (r: BulkRun) =>
    r.processed_count === r.passed_count + r.qa_failed_count + r.processing_failed_count + r.skipped_count;

  async function follow(org: string, runId: string, until: (r: BulkRun) => boolean, timeoutMs = 120_000) {
    const reads: BulkRun[] = [];
    const last = await waitFor(
      async () => {
        const r = await rpc.call(bulkRunRpc.get, { id: runId }, call(org));
        reads.push(r);
        return until(r) && r;
      },
      { timeoutMs, intervalMs: 50, what: `run ${runId}` },
    );
    return { last, reads };
  }

  it('previews without side effects, and an empty selection is born completed', async () => {
    await ensureReplicas(1);
    const org = await seed(5);
    const db = qaDb();
    const before = await sql<{ n: number }>`select count(*)::int as n from bulk_runs`.execute(db);
    const preview = await rpc.call(bulkRunRpc.preview, { filters: {} }, call(org));
    expect(preview).toMatchObject({ status: 'preview', matched_count: 5, eligible_count: 5 });
    expect((await sql<{ n: number }>`select count(*)::int as n from bulk_runs`.execute(db)).rows).toEqual(before.rows);
    const empty = await rpc.call(bulkRunRpc.execute, { filters: { device_id: 'nobody' } }, call(org));
    expect(empty).toMatchObject({ status: 'completed', total_count: 0, processed_count: 0 });
    expect((await rpc.call(bulkRunRpc.current, {}, call(org))).run).toBeNull();
  }, 60_000); // a replica's start (20 s), RPCs

  it('lets one of two concurrent executes in an organization start, answers the other with the first run, and lets another organization run meanwhile', async () => {
    await ensureReplicas(1);
    const org = await seed(20);
    const other = await seed(5);
    const results = await Promise.allSettled([
      rpc.call(bulkRunRpc.execute, { filters: {} }, call(org)),
      rpc.call(bulkRunRpc.execute, { filters: {} }, call(org)),
    ]);
    const started = results.filter((r) => r.status === 'fulfilled') as PromiseFulfilledResult<BulkRun>[];
    const refused = results.filter((r) => r.status === 'rejected') as PromiseRejectedResult[];
    expect(started).toHaveLength(1);
    expect(refused).toHaveLength(1);
    expect(refused[0]!.reason).toMatchObject({
      code: 'bulk_run_active',
      details: { run_id: started[0]!.value.run_id },
    });
    const otherRun = await rpc.call(bulkRunRpc.execute, { filters: {} }, call(other));
    expect(otherRun.status).toBe('queued');
    await follow(org, started[0]!.value.run_id, (r) => r.status === 'completed');
    await follow(other, otherRun.run_id, (r) => r.status === 'completed');
  }, 300_000); // a replica's start (20 s), two runs (2 × 120 s), 30 s

  it('spreads 2,000 episodes over two replicas, each processed exactly once, the counters adding up at every read, progress on the stream at most twice a second', async () => {
    const workers = await ensureReplicas(2);
    const org = await seed(2_000);
    const run = await rpc.call(bulkRunRpc.execute, { filters: {} }, call(org));
    expect(run).toMatchObject({ status: 'queued', total_count: 2_000 });
    const { last, reads } = await follow(org, run.run_id, (r) => r.status === 'completed', 240_000);
    expect(reads.every(invariant)).toBe(true);
    expect(reads.map((r) => r.version)).toEqual([...reads.map((r) => r.version)].sort((a, b) => a - b));
    expect(last).toMatchObject({ processed_count: 2_000, passed_count: 2_000, processing_failed_count: 0 });
    const db = qaDb();
    const perEpisode = await sql<{ n: number; c: number }>`
      select count(*)::int as n, count(distinct episode_id)::int as c from runs where bulk_run_id = ${run.run_id}`.execute(
      db,
    );
    expect(perEpisode.rows[0]).toEqual({ n: 2_000, c: 2_000 });
    // The work was spread: both replicas checked some.
    const byWorker = await sql<{ claimed_by: string | null }>`
      select distinct w.worker_id as claimed_by from bulk_run_workers w where w.run_id = ${run.run_id}`.execute(db);
    expect(byWorker.rows.length).toBeGreaterThanOrEqual(2);
    const finishedBy = workers.map(
      (p) => p.lines.filter((l) => l.msg === 'qa run finished' && l.trigger === 'bulk').length,
    );
    expect(finishedBy.every((n) => n > 0)).toBe(true);
    // What subscribers got: both replicas' progress, throttled together to at most 2 in any second of the stream.
    await waitForEventsSettled({
      jsm: system.infra.jsm,
      stream: system.infra.ns.stream(STREAMS.QA.name),
      outboxes: [db],
    });
    const progress = await progressOnStream(run.run_id);
    expect(progress.length).toBeGreaterThanOrEqual(3);
    expect(progress.map((p) => p.version)).toEqual([...progress.map((p) => p.version)].sort((a, b) => a - b));
    for (let i = 2; i < progress.length; i++)
      expect(progress[i]!.at - progress[i - 2]!.at).toBeGreaterThanOrEqual(1_000_000_000n);
  }, 330_000); // two replicas' starts (40 s), the run (240 s), the relay settling (15 s), 30 s

  it('finishes a run despite a replica killed holding claims: the other takes them over, never interrupts it, and checks each episode once', async ({
    signal,
  }) => {
    const [victim, survivor] = await ensureReplicas(2);
    const [victimId, survivorId] = [workerIds.get(victim!)!, workerIds.get(survivor!)!];
    const org = await seed(60);
    const db = qaDb();
    // The test holds every episode of the organization locked: each replica claims items and its checks wait on the
    // episodes' locks, so the victim surely holds claims when it dies, and the run outlives BULK_STALE_MS after it.
    const hold = await db.startTransaction().execute();
    const release = () => (hold.isCommitted || hold.isRolledBack ? Promise.resolve() : hold.rollback().execute());
    // Timed out while holding them, the test gives the episodes back at once, not when its waits end: the survivor's
    // checks wait on them, and the tests after share that replica.
    signal.addEventListener('abort', () => void release().catch(() => undefined), { once: true });
    try {
      await sql`select id from episodes where organization_id = ${org} for update`.execute(hold);
      const run = await rpc.call(bulkRunRpc.execute, { filters: {} }, call(org));
      const held = await waitFor(
        async () => {
          const { rows } = await sql<{ position: number }>`
            select position from bulk_run_items
            where run_id = ${run.run_id} and status = 'claimed' and claimed_by = ${victimId}
              and claim_expires_at > now()`.execute(db);
          return rows.length > 0 && rows.map((r) => r.position);
        },
        { timeoutMs: 30_000, what: 'the victim to hold claims' },
      );
      victim!.child.kill('SIGKILL');
      await exitWithin(victim!);

      // The survivor sweeps right after each of its heart-beats. Wait until it has beaten the run once past the
      // victim's last beat + BULK_STALE_MS, then once more: a whole sweep ran while the victim's beat was stale.
      const beatOf = async (worker: string) => {
        const { rows } = await sql<{ at: Date }>`
          select heartbeat_at as at from bulk_run_workers
          where run_id = ${run.run_id} and worker_id = ${worker}`.execute(db);
        return rows[0]!.at;
      };
      const victimLast = await beatOf(victimId);
      const pastStale = await waitFor(
        async () => {
          const at = await beatOf(survivorId);
          return at.getTime() >= victimLast.getTime() + STALE_MS && at;
        },
        { timeoutMs: 60_000, what: 'the survivor to beat the run past the stale threshold' },
      );
      await waitFor(async () => (await beatOf(survivorId)).getTime() > pastStale.getTime(), {
        timeoutMs: 30_000,
        what: 'one more poll of the survivor',
      });
      expect((await rpc.call(bulkRunRpc.get, { id: run.run_id }, call(org))).status).toBe('running');
      await hold.commit().execute();

      const { last, reads } = await follow(org, run.run_id, (r) => r.status !== 'running' && r.status !== 'queued');
      expect(last).toMatchObject({ status: 'completed', processed_count: 60, passed_count: 60 });
      expect(reads.every((r) => r.status !== 'interrupted')).toBe(true);
      // The victim's claims were taken over and finished by the survivor.
      const { rows: takenOver } = await sql<{ claimed_by: string }>`
        select claimed_by from bulk_run_items where run_id = ${run.run_id} and position = any(${held})`.execute(db);
      expect(takenOver.map((r) => r.claimed_by)).toEqual(held.map(() => survivorId));
      // Exactly once, by QA's own record: one finished run per episode of the run.
      const perEpisode = await runsPerEpisode(run.run_id);
      expect(perEpisode).toHaveLength(60);
      expect(perEpisode.every((e) => e.runs === 1)).toBe(true);
    } finally {
      await release().catch(() => undefined);
    }
    // Two starts (40 s), the victim holding claims (30 s) and its exit (20 s), the survivor past the stale threshold
    // (60 s) and one more poll (30 s), the run (120 s), 30 s.
  }, 330_000);

  it('counts a checked item in the transaction that records its run: a replica killed right after that commit leaves no second run', async () => {
    for (const p of alive()) {
      p.child.kill('SIGTERM');
      await exitWithin(p);
    }
    const org = await seed(40);
    // A second replica stays up and finishes the run: a run every replica abandoned is interrupted, not adopted.
    const victim = await replica({ FERRY_FAULTS: 'qa.after_record' });
    await replica();
    const victimId = workerIds.get(victim)!;
    const run = await rpc.call(bulkRunRpc.execute, { filters: {} }, call(org));
    expect(await exitWithin(victim, 60_000)).toMatchObject({ signal: 'SIGKILL' });
    expect(victim.raw.join('\n')).toMatch(/fault injected at qa\.after_record/);
    const db = qaDb();
    // Every run the victim recorded has its item counted under its claim: both or neither (two checks may have
    // committed together before the kill landed).
    const atDeath = await sql<{ runs: number; done: number }>`
      select count(r.id)::int as runs, (count(*) filter (where i.status = 'done'))::int as done
      from bulk_run_items i left join runs r on r.episode_id = i.episode_id and r.bulk_run_id = i.run_id
      where i.run_id = ${run.run_id} and i.claimed_by = ${victimId}`.execute(db);
    expect(atDeath.rows[0]!.runs).toBeGreaterThanOrEqual(1);
    expect(atDeath.rows[0]!.done).toBe(atDeath.rows[0]!.runs);
    const { last } = await follow(org, run.run_id, (r) => r.status === 'completed');
    expect(last).toMatchObject({ processed_count: 40, passed_count: 40, skipped_count: 0 });
    const perEpisode = await runsPerEpisode(run.run_id);
    expect(perEpisode).toHaveLength(40);
    expect(perEpisode.every((e) => e.runs === 1)).toBe(true);
  }, 300_000); // two stops (40 s), two starts (40 s), the victim's death (60 s), the run (120 s), 30 s

  /** A run well under way on one replica, then every replica killed: a start, a run's progress, two kills (180 s). */
  async function abandonedRun() {
    await ensureReplicas(1);
    const org = await seed(400);
    const run = await rpc.call(bulkRunRpc.execute, { filters: {} }, call(org));
    await follow(org, run.run_id, (r) => r.processed_count >= 20);
    await killAll();
    return { org, runId: run.run_id };
  }

  it('interrupts a run every replica abandoned at a replica’s start once BULK_STALE_MS has passed', async () => {
    const { org, runId } = await abandonedRun();
    await waitFor(async () => (await silentForMs(runId)) > STALE_MS, {
      timeoutMs: 30_000,
      what: 'nobody to have beaten the run for BULK_STALE_MS',
    });
    const restarted = await replica();
    const { last } = await follow(org, runId, (r) => r.status !== 'running' && r.status !== 'queued', 30_000);
    expect(last.status).toBe('interrupted');
    expect(last.processed_count).toBeLessThan(400);
    expect(invariant(last)).toBe(true);
    // The restarted replica neither beat it nor checked an item of it.
    const { beat, checked } = await workersOf(runId);
    expect(beat).not.toContain(workerIds.get(restarted));
    expect(checked).not.toContain(workerIds.get(restarted));
    expect(new Date(last.finished_at!).getTime() - (await lastBeatAt(runId)).getTime()).toBeGreaterThanOrEqual(
      STALE_MS,
    );
  }, 300_000); // the abandoned run (180 s), the silence (30 s), a start (20 s), the interruption (30 s), 30 s

  it('never adopts a run every replica abandoned when a replica restarts within BULK_STALE_MS: its periodic sweep interrupts it', async () => {
    const { org, runId } = await abandonedRun();
    // The window starts where the test says: the run's last beat is stamped just before the restart (as if the last
    // replica died that moment), and the restarted replica's threshold is longer than startReplica may take to boot
    // it (20 s). So it is back within the window however slowly it boots: its startup sweep cannot end the run.
    const windowMs = 25_000;
    await sql`update bulk_run_workers set heartbeat_at = now() where run_id = ${runId}`.execute(qaDb());
    const restarted = await replica({ BULK_STALE_MS: String(windowMs) });
    const silentAtStart = await silentForMs(runId);
    expect(silentAtStart).toBeLessThan(windowMs);
    const { last } = await follow(org, runId, (r) => r.status !== 'running' && r.status !== 'queued', 60_000);
    expect(last.status).toBe('interrupted');
    expect(last.error_message).toContain(`no QA worker heart-beat for ${windowMs} ms`);
    expect(invariant(last)).toBe(true);
    const { beat, checked } = await workersOf(runId);
    expect(beat).not.toContain(workerIds.get(restarted));
    expect(checked).not.toContain(workerIds.get(restarted));
    // Interrupted only once the window had passed with nobody beating it.
    expect(new Date(last.finished_at!).getTime() - (await lastBeatAt(runId)).getTime()).toBeGreaterThanOrEqual(
      windowMs,
    );
  }, 300_000); // the abandoned run (180 s), a start (20 s), the interruption (60 s), 30 s

  it('cancels: no new items handed out, cancelled once the in-flight ones finish', async () => {
    await ensureReplicas(1);
    const org = await seed(300);
    const run = await rpc.call(bulkRunRpc.execute, { filters: {} }, call(org));
    await follow(org, run.run_id, (r) => r.processed_count >= 10);
    const cancelling = await rpc.call(bulkRunRpc.cancel, { id: run.run_id }, call(org));
    expect(cancelling.cancel_requested_at).not.toBeNull();
    const { last } = await follow(org, run.run_id, (r) => r.status === 'cancelled');
    expect(last.processed_count).toBeLessThan(300);
    expect(invariant(last)).toBe(true);
    // Nothing in flight and nothing more to hand out: every item is either counted or never claimed, and
    // a claim needs an active run with no cancel requested — so no item can be checked for it later.
    const items = await sql<{ status: string; n: number }>`
      select status, count(*)::int as n from bulk_run_items where run_id = ${run.run_id}
      group by status order by status`.execute(qaDb());
    expect(items.rows).toEqual([
      { status: 'done', n: last.processed_count },
      { status: 'pending', n: 300 - last.processed_count },
    ]);
    expect((await rpc.call(bulkRunRpc.get, { id: run.run_id }, call(org))).processed_count).toBe(last.processed_count);
    // Cancelling it again changes nothing and answers the run as it is.
    const again = await rpc.call(bulkRunRpc.cancel, { id: run.run_id }, call(org));
    expect(again).toMatchObject({ status: 'cancelled', version: last.version, processed_count: last.processed_count });
  }, 300_000); // a start (20 s), the run's progress and its cancel (2 × 120 s), 30 s

  it('filters the episode set at execute time and skips statuses a person set', async () => {
    await ensureReplicas(1);
    const org = await seed(10);
    await seed(3, { org, status: 'rejected' });
    const filters: BulkQaFilters = {};
    const preview = await rpc.call(bulkRunRpc.preview, { filters }, call(org));
    expect(preview).toMatchObject({ matched_count: 13, eligible_count: 10, skipped: { protected_status: 3 } });
    const run = await rpc.call(bulkRunRpc.execute, { filters }, call(org));
    const { last } = await follow(org, run.run_id, (r) => r.status === 'completed');
    expect(last).toMatchObject({ total_count: 13, passed_count: 10, skipped_count: 3 });
    const onlyRejected = await rpc.call(bulkRunRpc.preview, { filters: { qa_status: ['rejected'] } }, call(org));
    expect(onlyRejected.matched_count).toBe(3);
  }, 180_000); // a start (20 s), the run (120 s), 30 s
});
