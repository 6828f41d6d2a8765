import { ACTIVE_BULK_RUN_STATUSES, bulkRunEvents, isTerminalBulkRun } from '@ferry/contracts';
import {
  CONFIG,
  inTransaction,
  isDomainError,
  isPostgresConnectionError,
  LOGGER,
  type Logger,
  newId,
  Outbox,
} from '@ferry/platform';
import { Inject, Injectable, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import { Kysely, type Transaction } from 'kysely';
import { checkId } from '../checks/index.js';
import type { QaDB } from '../database.js';
import type { QaConfig } from '../manifest.js';
import { QaRunner } from '../runs/qa-runner.js';
import {
  type BulkItemRow,
  BulkRunRepository,
  type BulkRunRow,
  type ClaimedItem,
  type ItemOutcome,
  toBulkRun,
} from './bulk-run.repository.js';
import { BulkRunService } from './bulk-run.service.js';

/**
 * The bulk-run worker of one QA replica. Every replica runs one, so the work of a run spreads over all of them: each
 * heart-beats the runs it works on, hands its BULK_CONCURRENCY slots to them in turn, claims items with a lease (a
 * dead replica's items are claimed again by the others when it lapses, so a run finishes despite a crash), checks them
 * through QaRunner (the same per-episode claim as auto QA, with BULK_ITEM_TIMEOUT_MS as its time limit), and counts
 * each outcome in one statement.
 *
 * Liveness: a replica works on — and heart-beats — only the runs it has seen alive since it started (executed since,
 * or heart-beaten since by some replica). So a run every replica abandoned gets no heart-beat again, even from a
 * replica restarted within BULK_STALE_MS, and the sweep — at startup and in every poll, right after the replica's own
 * heart-beats — marks it `interrupted` once nobody has beaten it for BULK_STALE_MS; a run alive on any replica is
 * beaten by it at every poll and never swept.
 */
@Injectable()
export class BulkRunWorker implements OnApplicationBootstrap, OnModuleDestroy {
  private timer?: NodeJS.Timeout;
  private stopping = false;
  private tick?: Promise<void>;
  private readonly inFlight = new Set<Promise<void>>();
  /** When this replica started, by the database's clock: runs not seen alive since are not its to adopt. */
  private since?: Date;
  /** The run this replica gave its last free slot to (the round-robin's place). */
  private lastServed?: string;

  constructor(
    private readonly db: Kysely<QaDB>,
    private readonly runs: BulkRunRepository,
    private readonly service: BulkRunService,
    private readonly runner: QaRunner,
    private readonly outbox: Outbox,
    @Inject(CONFIG) private readonly config: QaConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  private get lease(): number {
    return this.config.QA_CLAIM_LEASE_MS;
  }

  async onApplicationBootstrap(): Promise<void> {
    // Runs every worker abandoned while this replica was down are interrupted before it takes any work.
    try {
      this.since = await this.runs.now(this.db);
      await this.sweep();
    } catch (err) {
      this.logger.warn({ err }, 'bulk run startup sweep failed');
    }
    this.schedule(0);
  }

  async onModuleDestroy(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.timer);
    await this.tick;
    await Promise.allSettled([...this.inFlight]);
  }

  private polling = false;
  private again = false;

  /** Polls now (after the current pass when one is running): an item finished, a slot is free. */
  private kick(): void {
    if (this.polling) this.again = true;
    else this.schedule(0);
  }

  private schedule(ms: number): void {
    if (this.stopping) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.polling = true;
      this.tick = this.poll()
        .catch((err) => {
          if (!isPostgresConnectionError(err)) this.logger.warn({ err }, 'bulk run poll failed');
        })
        .finally(() => {
          this.polling = false;
          const again = this.again;
          this.again = false;
          this.schedule(again ? 0 : this.config.BULK_POLL_MS);
        });
    }, ms);
    this.timer.unref();
  }

  /** One pass: heart-beat the live runs, sweep dead ones, feed the live ones, flush throttled progress. */
  async poll(): Promise<void> {
    this.since ??= await this.runs.now(this.db);
    // Heart-beat before sweeping: after a database outage longer than BULK_STALE_MS every heart-beat is
    // that old, and a sweep first would interrupt the runs this very replica is alive to work on.
    const mine = new Set(await this.runs.heartbeat(this.db, this.config.QA_WORKER_ID, this.since));
    await this.sweep();
    const open: BulkRunRow[] = [];
    for (const run of await this.runs.allActive(this.db)) {
      if (this.stopping) return;
      if (run.cancel_requested_at) {
        // Any replica may end a cancelled run once nothing of it is in flight, abandoned or not.
        await inTransaction(this.db, async (trx) => {
          const locked = await this.runs.find(trx, run.id, { lock: true });
          if (locked) await this.service.finishCancelled(trx, locked);
        });
        continue;
      }
      if (!mine.has(run.id)) continue; // not seen alive since this replica started: the sweep decides
      if (run.status === 'queued') await this.start(run);
      open.push(run);
    }
    await this.feed(open);
    for (const run of open) await this.flushProgress(run.id);
  }

  /**
   * Hands this replica's free slots to the open runs in turn, one item each, starting after the run served last:
   * every organization's run moves while several run at once, rather than the oldest taking every slot until its
   * queue is empty (a slot freed by one run's item goes to the next run).
   */
  private async feed(runs: readonly BulkRunRow[]): Promise<void> {
    let free = this.config.BULK_CONCURRENCY - this.inFlight.size;
    const start = runs.findIndex((r) => r.id === this.lastServed) + 1;
    let turn = [...runs.slice(start), ...runs.slice(0, start)];
    while (free > 0 && turn.length > 0 && !this.stopping) {
      const next: BulkRunRow[] = [];
      for (const run of turn) {
        if (free === 0) break;
        const [item] = await this.runs.claimItems(this.db, run.id, this.config.QA_WORKER_ID, this.lease, 1);
        if (!item) continue; // nothing left to hand out (or a cancel came): out of the rotation
        free--;
        this.lastServed = run.id;
        this.launch(run, item);
        next.push(run);
      }
      turn = next;
    }
  }

  private launch(run: BulkRunRow, item: ClaimedItem): void {
    const p = this.process(run, item)
      .catch((err) => {
        // Counting failed (the database went away): the item's claim lapses and it is taken again;
        // a check already recorded was counted with it, so it is not run twice.
        if (!isPostgresConnectionError(err)) this.logger.warn({ err, run_id: run.id }, 'bulk item not counted');
      })
      .finally(() => {
        this.inFlight.delete(p);
        this.kick(); // take the next item at once rather than at the next poll
      });
    this.inFlight.add(p);
  }

  private async start(run: BulkRunRow): Promise<void> {
    await inTransaction(this.db, async (trx) => {
      // Throttled like any other change: execute already published the queued run and took the slot.
      const started = await this.runs.transition(trx, run.id, ['queued'], 'running');
      if (started) await this.progress(trx, started.id);
    });
  }

  /**
   * Checks one item, keeping its claim alive meanwhile. The runner gives the check BULK_ITEM_TIMEOUT_MS: past it the
   * check is aborted (its read closed, its episode claim released) and the item counted `processing_failed` with the
   * reason. A finished check is counted inside the transaction that records it (a replica dying after the commit
   * leaves nothing to check again); a skip or a failure is counted afterwards, in its own transaction.
   */
  private async process(run: BulkRunRow, item: ClaimedItem): Promise<void> {
    const renew = setInterval(
      () => {
        void this.runs.renewItem(this.db, item, this.lease).catch(() => undefined);
      },
      Math.max(100, Math.floor(this.lease / 3)),
    );
    renew.unref();
    let outcome: ItemOutcome;
    let error: string | undefined;
    try {
      const result = await this.runner.check({
        episodeId: item.episode_id,
        trigger: 'bulk',
        requestedBy: run.created_by,
        bulkRunId: run.id,
        onRecorded: (trx, qaRun) =>
          this.record(trx, run.id, item, {
            outcome: qaRun.passed ? 'passed' : 'qa_failed',
            failedChecks: qaRun.results.filter((r) => r.status === 'failed').map(checkId),
          }),
      });
      if (result.kind === 'finished') return;
      if (result.reason === 'already_running' && (await this.runs.handBackTakenOver(this.db, item))) return;
      outcome = 'skipped';
    } catch (err) {
      outcome = 'processing_failed';
      // The error it failed with, as it is: the time limit's own (the runner throws it only for a read the limit cut
      // short), the store's, or a database failure — never a time-out because the time happened to be up as well.
      error = err instanceof Error ? err.message : String(err);
      if (!isDomainError(err) || err.code !== 'storage_error') {
        this.logger.error({ err, run_id: run.id, episode_id: item.episode_id }, 'bulk item failed');
      }
    } finally {
      clearInterval(renew);
    }
    await inTransaction(this.db, (trx) => this.record(trx, run.id, item, { outcome, error }));
  }

  /** Counts an outcome (only under this claim of the item) and ends the run when it was the last one. */
  private async record(
    trx: Transaction<QaDB>,
    runId: string,
    item: BulkItemRow,
    counted: { outcome: ItemOutcome; failedChecks?: string[]; error?: string },
  ): Promise<void> {
    if (!(await this.runs.finishItem(trx, item, counted.outcome, counted.error))) return; // lapsed and claimed again
    const run = await this.runs.count(trx, runId, counted.outcome, counted.failedChecks ?? []);
    if (!run) return; // the run ended meanwhile (cancelled, interrupted): its counters stay as announced
    if (run.processed_count >= run.total_count) {
      const done = await this.runs.transition(trx, runId, ACTIVE_BULK_RUN_STATUSES, 'completed');
      if (done) await this.outbox.append(trx, bulkRunEvents.finished, { run: toBulkRun(done) }, { aggregateId: runId });
      return;
    }
    if (run.cancel_requested_at && (await this.service.finishCancelled(trx, run))) return;
    await this.progress(trx, runId);
  }

  private async flushProgress(runId: string): Promise<void> {
    await inTransaction(this.db, (trx) => this.progress(trx, runId));
  }

  /**
   * A progress event when one is due: the run moved, and the last progress event was seen published
   * BULK_PROGRESS_INTERVAL_MS ago (≤ 2/s per run on the stream). No caller skips the throttle, the run's start
   * included: execute took the first slot.
   */
  private async progress(trx: Transaction<QaDB>, runId: string): Promise<void> {
    await this.runs.noteProgressPublished(trx, runId);
    const eventId = newId();
    const row = await this.runs.takeProgressSlot(trx, runId, this.config.BULK_PROGRESS_INTERVAL_MS, eventId);
    if (row && !isTerminalBulkRun(toBulkRun(row).status)) {
      await this.outbox.append(trx, bulkRunEvents.progress, { run: toBulkRun(row) }, { aggregateId: runId, eventId });
    }
  }

  /** Interrupts the runs every worker abandoned: nobody has heart-beaten them for BULK_STALE_MS. */
  async sweep(): Promise<number> {
    return inTransaction(this.db, async (trx) => {
      const stale = await this.runs.stale(trx, this.config.BULK_STALE_MS);
      for (const run of stale) {
        const ended = await this.runs.transition(trx, run.id, ACTIVE_BULK_RUN_STATUSES, 'interrupted', {
          error_message: `no QA worker heart-beat for ${this.config.BULK_STALE_MS} ms: every replica working on it stopped`,
        });
        if (!ended) continue;
        await this.outbox.append(trx, bulkRunEvents.finished, { run: toBulkRun(ended) }, { aggregateId: run.id });
        this.logger.warn(
          { run_id: run.id, processed: ended.processed_count, total: ended.total_count },
          'bulk run interrupted',
        );
      }
      return stale.length;
    });
  }
}
