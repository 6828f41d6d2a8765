import {
  type BulkQaFilters,
  type BulkRun,
  type BulkRunStatus,
  bulkRunEvents,
  bulkRunRpc,
  isTerminalBulkRun,
  type RpcCallContext,
  STREAMS,
} from '@ferry/contracts';
import { DomainError, newId, RpcServer } from '@ferry/platform';
import { silentLogger } from '@ferry/platform/testing';
import type { System } from './system.js';

/**
 * Plays the QA service's side of bulk runs on the real NATS and JetStream, for the tests of what sits in
 * front of it (the gateway's SSE relay, the live page, `ferry bulk-qa`, the fan-out bench): it answers
 * `qa.rpc.bulk_run.*` from runs held in memory and publishes progress/finished events into the namespace's QA
 * stream with the headers the outbox relay sets — when the test says so, which the real service cannot be made to
 * do: a run held at 50 % while a gateway restarts, a terminal event that is never published, a burst of progress.
 *
 * It answers as QA does (services/qa/src/bulk): a new run is `queued` (the first step starts it, as a worker
 * does), one over no episode is born `completed`; a second execute in the organization is 409 `bulk_run_active`
 * naming the active run; cancelling an ended run answers it as it is; cancelling a queued run (nothing claimed
 * yet) ends it `cancelled` at once with its terminal event, while a running one is taken to have checks in flight
 * and keeps running, cancel requested, until the test finishes it. The real QA service's bulk runs are tested
 * end to end in bulk-qa.e2e and bulk-qa-live.e2e.
 */
export class FakeQaBulkRuns {
  readonly runs = new Map<string, BulkRun>();
  private readonly server: RpcServer;
  /** The filters of every preview asked for, in order. */
  readonly previews: BulkQaFilters[] = [];
  /** How many episodes the next execute finds (0: the run is born completed). */
  executeTotal = 10;
  /** Each publish's stream sequence, in order. */
  readonly published: { seq: number; kind: 'progress' | 'finished'; run: BulkRun }[] = [];

  constructor(private readonly system: System) {
    const { nc, ns } = system.infra;
    this.server = new RpcServer({
      nc,
      ns,
      service: 'qa',
      db: system.infra.database('qa').db,
      logger: silentLogger(),
    });
    const find = (id: string, call: RpcCallContext) => {
      const run = this.runs.get(id);
      // Another organization's run is not found, exactly as for an unknown id.
      if (!run || run.organization_id !== call.actor.org)
        throw new DomainError('not_found', `bulk run ${id} not found`);
      return run;
    };
    this.server.register(bulkRunRpc.get, async ({ id }, { call }) => find(id, call));
    this.server.register(bulkRunRpc.current, async (_data, { call }) => ({
      run:
        [...this.runs.values()].find(
          (r) => r.organization_id === call.actor.org && (r.status === 'queued' || r.status === 'running'),
        ) ?? null,
    }));
    this.server.register(bulkRunRpc.list, async ({ query }, { call }) => ({
      items: [...this.runs.values()]
        .filter((r) => r.organization_id === call.actor.org && (!query.status || query.status.includes(r.status)))
        .reverse()
        .slice(0, query.limit),
      next_cursor: null,
    }));
    this.server.register(bulkRunRpc.preview, async ({ filters }) => {
      this.previews.push(filters);
      return {
        status: 'preview' as const,
        matched_count: 12,
        eligible_count: 10,
        skipped: { already_running: 1, protected_status: 1 },
        warnings: [],
      };
    });
    this.server.register(bulkRunRpc.execute, async ({ filters }, { call }) => {
      const active = [...this.runs.values()].find(
        (r) => r.organization_id === call.actor.org && !isTerminalBulkRun(r.status),
      );
      if (active) {
        throw new DomainError('bulk_run_active', `run ${active.run_id} is ${active.status}; one run at a time`, {
          run_id: active.run_id,
          status: active.status,
        });
      }
      const total = this.executeTotal;
      const run = this.create(call.actor.org, {
        filters,
        created_by: call.actor.sub,
        total_count: total,
        ...(total === 0 ? { status: 'completed' as const, finished_at: new Date().toISOString() } : {}),
      });
      await this.publish(total === 0 ? 'finished' : 'progress', run);
      return run;
    });
    this.server.register(bulkRunRpc.cancel, async ({ id }, { call }) => {
      const run = find(id, call);
      if (isTerminalBulkRun(run.status)) return run;
      const requested = this.update(id, { cancel_requested_at: run.cancel_requested_at ?? new Date().toISOString() });
      if (requested.status !== 'queued') return requested;
      await this.finish(id, 'cancelled');
      return this.runs.get(id)!;
    });
    this.server.start();
  }

  stop(): Promise<void> {
    return this.server.stop();
  }

  get stream(): string {
    return this.system.infra.ns.stream(STREAMS.QA.name);
  }

  /** A run as execute leaves it (`queued`, not started), unless `patch` says otherwise; nothing is published. */
  create(org: string, patch: Partial<BulkRun> = {}): BulkRun {
    const now = new Date().toISOString();
    const status = patch.status ?? 'queued';
    const run: BulkRun = {
      run_id: newId(),
      organization_id: org,
      action: 'bulk_qa',
      status,
      filters: {} as BulkQaFilters,
      total_count: 10,
      processed_count: 0,
      passed_count: 0,
      qa_failed_count: 0,
      processing_failed_count: 0,
      skipped_count: 0,
      failures_by_check: {},
      version: 1,
      created_by: 'operator-test',
      created_at: now,
      started_at: status === 'queued' ? null : now,
      updated_at: now,
      finished_at: null,
      cancel_requested_at: null,
      error_message: null,
      ...patch,
    };
    this.runs.set(run.run_id, run);
    return run;
  }

  /** Changes the snapshot QA answers (version + 1) without publishing anything. */
  update(id: string, patch: Partial<BulkRun>): BulkRun {
    const run = this.runs.get(id)!;
    const next = { ...run, ...patch, version: patch.version ?? run.version + 1, updated_at: new Date().toISOString() };
    this.runs.set(id, next);
    return next;
  }

  /** One more episode processed (passed, or failed `check`), published as a progress event; starts a queued run. */
  async step(id: string, outcome: { failed?: string } = {}, extra: Partial<BulkRun> = {}): Promise<number> {
    const run = this.runs.get(id)!;
    const failures = { ...run.failures_by_check };
    if (outcome.failed) failures[outcome.failed] = (failures[outcome.failed] ?? 0) + 1;
    const next = this.update(id, {
      ...(run.status === 'queued' ? { status: 'running' as const, started_at: new Date().toISOString() } : {}),
      processed_count: run.processed_count + 1,
      passed_count: run.passed_count + (outcome.failed ? 0 : 1),
      qa_failed_count: run.qa_failed_count + (outcome.failed ? 1 : 0),
      failures_by_check: failures,
      ...extra,
    });
    return this.publish('progress', next);
  }

  /** Ends the run: publishes its finished event first (unless `publish: false`: a lost event), then updates the snapshot. */
  async finish(id: string, status: BulkRunStatus = 'completed', options: { publish?: boolean } = {}): Promise<number> {
    const run = this.runs.get(id)!;
    const ended: BulkRun = {
      ...run,
      status,
      version: run.version + 1,
      finished_at: new Date().toISOString(),
      updated_at: new Date().toISOString(),
    };
    const seq = options.publish === false ? 0 : await this.publish('finished', ended);
    this.runs.set(id, ended);
    return seq;
  }

  /** Publishes as QA's outbox relay does: into the QA stream, Nats-Msg-Id = event id, Ferry-* headers. */
  async publish(kind: 'progress' | 'finished', run: BulkRun): Promise<number> {
    const def = bulkRunEvents[kind];
    const { seq } = await this.system.infra.publishEvent(def, { run }, { aggregateId: run.run_id });
    this.published.push({ seq, kind, run });
    return seq;
  }

  /** The QA stream's last sequence now. */
  async lastSeq(): Promise<number> {
    return (await this.system.infra.jsm.streams.info(this.stream)).state.last_seq;
  }
}
