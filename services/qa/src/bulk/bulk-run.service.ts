import {
  ACTIVE_BULK_RUN_STATUSES,
  type Actor,
  type BulkQaFilters,
  type BulkQaPreview,
  type BulkRun,
  type BulkRunListFilter,
  bulkRunEvents,
  isTerminalBulkRun,
  type Page,
} from '@ferry/contracts';
import { CONFIG, DomainError, decodeCursor, isIdCursor, newId, notFound, Outbox, toPage } from '@ferry/platform';
import { Inject, Injectable } from '@nestjs/common';
import { Kysely, type Transaction } from 'kysely';
import type { QaDB } from '../database.js';
import type { QaConfig } from '../manifest.js';
import { BulkRunRepository, type BulkRunRow, toBulkRun } from './bulk-run.repository.js';

/**
 * Bulk QA runs (DESIGN §7): preview (counts, no side effects), execute (the episode set fixed now, one
 * active run per organization by a partial unique index), snapshots, cancel. The work itself is done
 * by BulkRunWorker on every replica; progress and the one terminal event go through the outbox.
 */
@Injectable()
export class BulkRunService {
  constructor(
    private readonly db: Kysely<QaDB>,
    private readonly runs: BulkRunRepository,
    private readonly outbox: Outbox,
    @Inject(CONFIG) private readonly config: QaConfig,
  ) {}

  private assertWriter(actor: Actor): void {
    if (actor.role !== 'admin' && actor.role !== 'operator') {
      throw new DomainError('forbidden', 'only an operator or admin may run bulk QA');
    }
  }

  async preview(actor: Actor, filters: BulkQaFilters): Promise<BulkQaPreview> {
    const { matched, running, protected: protectedCount } = await this.runs.countMatching(this.db, actor.org, filters);
    const warnings: string[] = [];
    if (protectedCount > 0) {
      warnings.push(
        `${protectedCount} episode(s) have a status a person set (needs_inspection, inspector_approved, rejected): they are skipped`,
      );
    }
    if (running > 0) warnings.push(`${running} episode(s) are being checked right now: they are skipped`);
    const active = await this.runs.active(this.db, actor.org);
    if (active) warnings.push(`run ${active.id} is ${active.status}: a new run cannot start until it ends`);
    return {
      status: 'preview',
      matched_count: matched,
      eligible_count: matched - running - protectedCount,
      skipped: { already_running: running, protected_status: protectedCount },
      warnings,
    };
  }

  /** Starts a run over the episodes matching now; 409 `bulk_run_active` while another is active. */
  async execute(actor: Actor, filters: BulkQaFilters, trx: Transaction<QaDB>): Promise<BulkRun> {
    this.assertWriter(actor);
    const busy = async (row?: BulkRunRow) => {
      const active = row ?? (await this.runs.active(trx, actor.org));
      return new DomainError('bulk_run_active', `run ${active?.id} is ${active?.status}; one run at a time`, {
        run_id: active?.id,
        status: active?.status,
      });
    };
    const existing = await this.runs.active(trx, actor.org);
    if (existing) throw await busy(existing);
    const episodes = await this.runs.select(trx, actor.org, filters);
    const empty = episodes.length === 0;
    const eventId = newId();
    const row = await this.runs.insertUnlessActive(
      trx,
      {
        id: newId(),
        organization_id: actor.org,
        status: empty ? 'completed' : 'queued',
        filters: JSON.stringify(filters),
        total_count: episodes.length,
        created_by: actor.sub,
        updated_at: new Date(),
        ...(empty ? { finished_at: new Date(), started_at: new Date() } : {}),
      },
      eventId,
    );
    // Two executes racing: the index let one in; the other sees it (its transaction waited for ours).
    if (!row) throw await busy();
    await this.runs.insertItems(
      trx,
      row.id,
      episodes.map((e) => e.id),
    );
    const run = toBulkRun(row);
    if (empty) await this.outbox.append(trx, bulkRunEvents.finished, { run }, { aggregateId: run.run_id, eventId });
    else await this.outbox.append(trx, bulkRunEvents.progress, { run }, { aggregateId: run.run_id, eventId });
    return run;
  }

  async get(actor: Actor, id: string): Promise<BulkRun> {
    const row = await this.runs.find(this.db, id, { org: actor.org });
    if (!row) throw notFound('Bulk run', id);
    return toBulkRun(row);
  }

  async current(actor: Actor): Promise<{ run: BulkRun | null }> {
    const row = await this.runs.active(this.db, actor.org);
    return { run: row ? toBulkRun(row) : null };
  }

  async list(actor: Actor, filter: BulkRunListFilter): Promise<Page<BulkRun>> {
    const after = filter.cursor ? decodeCursor(filter.cursor, isIdCursor).id : undefined;
    const rows = await this.runs.list(this.db, actor.org, filter, after);
    return toPage(rows, filter.limit, toBulkRun, (r) => ({ id: r.id }));
  }

  /**
   * Stops handing out items; the run ends `cancelled` once the items in flight finish (at once when
   * none are). Cancelling an ended run answers it as it is.
   */
  async cancel(actor: Actor, id: string, trx: Transaction<QaDB>): Promise<BulkRun> {
    this.assertWriter(actor);
    const row = await this.runs.find(trx, id, { org: actor.org, lock: true });
    if (!row) throw notFound('Bulk run', id);
    if (isTerminalBulkRun(row.status)) return toBulkRun(row);
    const requested = (await this.runs.requestCancel(trx, id))!;
    return toBulkRun((await this.finishCancelled(trx, requested)) ?? requested);
  }

  /** Ends a cancel-requested run when nothing of it is in flight; returns it when it ended. */
  async finishCancelled(trx: Transaction<QaDB>, row: BulkRunRow): Promise<BulkRunRow | undefined> {
    if (!row.cancel_requested_at || (await this.runs.inFlight(trx, row.id)) > 0) return undefined;
    const ended = await this.runs.transition(trx, row.id, ACTIVE_BULK_RUN_STATUSES, 'cancelled');
    if (ended)
      await this.outbox.append(trx, bulkRunEvents.finished, { run: toBulkRun(ended) }, { aggregateId: row.id });
    return ended;
  }

  /** The configured pace of progress events. */
  get progressIntervalMs(): number {
    return this.config.BULK_PROGRESS_INTERVAL_MS;
  }
}
