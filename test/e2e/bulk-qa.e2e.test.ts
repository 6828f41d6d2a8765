import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { type Actor, type BulkQaFilters, type BulkRun, bulkRunRpc, type RpcCallContext } from '@ferry/contracts';
import { LocalBlobStore, newId, RpcClient } from '@ferry/platform';
import { silentLogger, waitFor } from '@ferry/platform/testing';
import { sql } from 'kysely';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeRecording } from '../../services/qa/src/checks/testing/mcap-corpus.js';
import { type ServiceProcess, System } from '../support/system.js';

const FAST = { BULK_POLL_MS: '100', QA_CLAIM_LEASE_MS: '3000', BULK_STALE_MS: '3000', BULK_CONCURRENCY: '4' };

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

  beforeAll(async () => {
    system = await System.create();
    const bytes = await writeRecording();
    mcapKey = `fixtures/${newId()}.mcap`;
    mcapSha = createHash('sha256').update(bytes).digest('hex');
    mcapSize = bytes.byteLength;
    await new LocalBlobStore({ root: system.blobDir }).put(mcapKey, Readable.from([Buffer.from(bytes)]));
    rpc = new RpcClient({ nc: system.infra.nc, ns: system.infra.ns, logger: silentLogger(), timeoutMs: 30_000 });
  }, 120_000);
  afterAll(() => system?.shutdown());

  async function replica(env: Record<string, string> = {}) {
    const p = await system.startReplica('qa', { ...FAST, ...env });
    replicas.push(p);
    return p;
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
    const db = system.infra.database('qa').db;
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
    const db = system.infra.database('qa').db;
    const before = await sql<{ n: number }>`select count(*)::int as n from bulk_runs`.execute(db);
    const preview = await rpc.call(bulkRunRpc.preview, { filters: {} }, call(org));
    expect(preview).toMatchObject({ status: 'preview', matched_count: 5, eligible_count: 5 });
    expect((await sql<{ n: number }>`select count(*)::int as n from bulk_runs`.execute(db)).rows).toEqual(before.rows);
    const empty = await rpc.call(bulkRunRpc.execute, { filters: { device_id: 'nobody' } }, call(org));
    expect(empty).toMatchObject({ status: 'completed', total_count: 0, processed_count: 0 });
    expect((await rpc.call(bulkRunRpc.current, {}, call(org))).run).toBeNull();
  });

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
  });

  it('spreads 2,000 episodes over two replicas, each processed exactly once, the counters adding up at every read', async () => {
    const workers = await ensureReplicas(2);
    const org = await seed(2_000);
    const run = await rpc.call(bulkRunRpc.execute, { filters: {} }, call(org));
    expect(run).toMatchObject({ status: 'queued', total_count: 2_000 });
    const { last, reads } = await follow(org, run.run_id, (r) => r.status === 'completed', 240_000);
    expect(reads.every(invariant)).toBe(true);
    expect(reads.map((r) => r.version)).toEqual([...reads.map((r) => r.version)].sort((a, b) => a - b));
    expect(last).toMatchObject({ processed_count: 2_000, passed_count: 2_000, processing_failed_count: 0 });
    const db = system.infra.database('qa').db;
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
  });

  it('finishes a run despite a replica killed mid-run, and never interrupts it while another is alive', async () => {
    await ensureReplicas(2);
    const org = await seed(300);
    const run = await rpc.call(bulkRunRpc.execute, { filters: {} }, call(org));
    await follow(org, run.run_id, (r) => r.processed_count >= 30);
    const victim = alive()[0]!;
    victim.child.kill('SIGKILL');
    await victim.exited;
    const { last, reads } = await follow(org, run.run_id, (r) => r.status !== 'running' && r.status !== 'queued');
    expect(last.status).toBe('completed');
    expect(reads.every((r) => r.status !== 'interrupted')).toBe(true);
    expect(last.processed_count).toBe(300);
  });

  it('counts a checked item in the transaction that records its run: a replica killed right after that commit leaves no second run', async () => {
    for (const p of alive()) {
      p.child.kill('SIGTERM');
      await p.exited;
    }
    const org = await seed(40);
    const victim = await replica({ FERRY_FAULTS: 'qa.after_record' });
    const run = await rpc.call(bulkRunRpc.execute, { filters: {} }, call(org));
    expect(await victim.exited).toMatchObject({ signal: 'SIGKILL' });
    expect(victim.raw.join('\n')).toMatch(/fault injected at qa\.after_record/);
    const db = system.infra.database('qa').db;
    // Every run the victim recorded has its item counted: both or neither (two checks may have committed
    // together before the kill landed).
    const atDeath = await sql<{ runs: number; done: number }>`
      select (select count(*)::int from runs where bulk_run_id = ${run.run_id}) as runs,
             (select count(*)::int from bulk_run_items where run_id = ${run.run_id} and status = 'done') as done`.execute(
      db,
    );
    expect(atDeath.rows[0]!.runs).toBeGreaterThanOrEqual(1);
    expect(atDeath.rows[0]!.done).toBe(atDeath.rows[0]!.runs);
    await replica();
    const { last } = await follow(org, run.run_id, (r) => r.status === 'completed');
    expect(last).toMatchObject({ processed_count: 40, passed_count: 40, skipped_count: 0 });
    const perEpisode = await sql<{ n: number; c: number }>`
      select count(*)::int as n, count(distinct episode_id)::int as c from runs where bulk_run_id = ${run.run_id}`.execute(
      db,
    );
    expect(perEpisode.rows[0]).toEqual({ n: 40, c: 40 });
  });

  it('interrupts a run every replica abandoned, after the lease, also when a replica restarts', async () => {
    await ensureReplicas(1);
    const org = await seed(400);
    const run = await rpc.call(bulkRunRpc.execute, { filters: {} }, call(org));
    await follow(org, run.run_id, (r) => r.processed_count >= 20);
    for (const p of alive()) {
      p.child.kill('SIGKILL');
      await p.exited;
    }
    await new Promise((r) => setTimeout(r, 3_500)); // the stale threshold (BULK_STALE_MS) passes with nobody alive
    await replica();
    const { last } = await follow(org, run.run_id, (r) => r.status !== 'running' && r.status !== 'queued', 30_000);
    expect(last.status).toBe('interrupted');
    expect(last.processed_count).toBeLessThan(400);
    expect(invariant(last)).toBe(true);
    // Still interrupted a while later: the restarted replica never adopted it.
    await new Promise((r) => setTimeout(r, 1_000));
    expect((await rpc.call(bulkRunRpc.get, { id: run.run_id }, call(org))).status).toBe('interrupted');
  });

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
      group by status order by status`.execute(system.infra.database('qa').db);
    expect(items.rows).toEqual([
      { status: 'done', n: last.processed_count },
      { status: 'pending', n: 300 - last.processed_count },
    ]);
    expect((await rpc.call(bulkRunRpc.get, { id: run.run_id }, call(org))).processed_count).toBe(last.processed_count);
    // Cancelling it again changes nothing and answers the run as it is.
    const again = await rpc.call(bulkRunRpc.cancel, { id: run.run_id }, call(org));
    expect(again).toMatchObject({ status: 'cancelled', version: last.version, processed_count: last.processed_count });
  });

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
  });
});
