import {
  ACTIVE_BULK_RUN_STATUSES,
  type BulkQaFilters,
  type BulkRun,
  type BulkRunListFilter,
  type BulkRunStatus,
  PROTECTED_QA_STATUSES,
} from '@ferry/contracts';
import { Injectable } from '@nestjs/common';
import { type Insertable, type Kysely, type Selectable, sql } from 'kysely';
import type { BulkRunItemsTable, BulkRunsTable, QaDB } from '../database.js';

type Db = Kysely<QaDB>;
export type BulkRunRow = Selectable<BulkRunsTable>;
export type BulkItemRow = Selectable<BulkRunItemsTable>;
/** A claimed item, with the worker whose lapsed claim this one replaced (null for an item never claimed before). */
export type ClaimedItem = BulkItemRow & { taken_from: string | null };
export type ItemOutcome = 'passed' | 'qa_failed' | 'processing_failed' | 'skipped';

const ACTIVE = ACTIVE_BULK_RUN_STATUSES;
/** An episode some replica is checking right now (a live claim). */
const CLAIMED = sql`claim_id is not null and claim_expires_at > now()`;

export function toBulkRun(row: BulkRunRow): BulkRun {
  return {
    run_id: row.id,
    organization_id: row.organization_id,
    action: 'bulk_qa',
    status: row.status,
    filters: row.filters as BulkQaFilters,
    total_count: row.total_count,
    processed_count: row.processed_count,
    passed_count: row.passed_count,
    qa_failed_count: row.qa_failed_count,
    processing_failed_count: row.processing_failed_count,
    skipped_count: row.skipped_count,
    failures_by_check: row.failures_by_check,
    version: row.version,
    created_by: row.created_by,
    created_at: row.created_at.toISOString(),
    started_at: row.started_at?.toISOString() ?? null,
    updated_at: row.updated_at.toISOString(),
    finished_at: row.finished_at?.toISOString() ?? null,
    cancel_requested_at: row.cancel_requested_at?.toISOString() ?? null,
    error_message: row.error_message,
  };
}

/** Bulk runs, their items and workers' heart-beats; the only place kysely touches them. */
@Injectable()
export class BulkRunRepository {
  /** The organization's episodes a run over `f` covers, newest first (Keystone's snapshot order). */
  async select(db: Db, org: string, f: BulkQaFilters): Promise<{ id: string; qa_status: string; claimed: boolean }[]> {
    return this.matching(db, org, f)
      .select(['id', 'qa_status', sql<boolean>`${CLAIMED}`.as('claimed')])
      .orderBy('episode_created_at', 'desc')
      .orderBy('id', 'desc')
      .execute();
  }

  /**
   * How many episodes `f` matches, and how many of them a run would skip: being checked now, or holding a status a
   * person set (counted apart from the claimed ones, as the run counts them). One aggregate, no rows.
   */
  async countMatching(
    db: Db,
    org: string,
    f: BulkQaFilters,
  ): Promise<{ matched: number; running: number; protected: number }> {
    return this.matching(db, org, f)
      .select([
        sql<number>`count(*)::int`.as('matched'),
        sql<number>`(count(*) filter (where ${CLAIMED}))::int`.as('running'),
        sql<number>`(count(*) filter (where not (${CLAIMED}) and qa_status in (${sql.join(PROTECTED_QA_STATUSES)})))::int`.as(
          'protected',
        ),
      ])
      .executeTakeFirstOrThrow();
  }

  private matching(db: Db, org: string, f: BulkQaFilters) {
    let q = db.selectFrom('episodes').where('organization_id', '=', org);
    if (f.created_from) q = q.where('episode_created_at', '>=', new Date(f.created_from));
    if (f.created_to) q = q.where('episode_created_at', '<', new Date(f.created_to));
    if (f.qa_status) q = q.where('qa_status', 'in', f.qa_status);
    if (f.scene_id) q = q.where('scene_id', '=', f.scene_id);
    if (f.order_id) q = q.where('order_id', '=', f.order_id);
    if (f.device_id) q = q.where('device_id', '=', f.device_id);
    if (f.robot_type) q = q.where('robot_type', '=', f.robot_type);
    if (f.label) q = q.where(sql<boolean>`labels @> array[${f.label}]::text[]`);
    if (f.q) {
      const like = `%${f.q.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
      q = q.where((eb) =>
        eb.or([
          eb(sql`id::text`, 'ilike', like),
          eb(sql`task_id::text`, 'ilike', like),
          eb('device_id', 'ilike', like),
        ]),
      );
    }
    return q;
  }

  async active(db: Db, org: string): Promise<BulkRunRow | undefined> {
    return db
      .selectFrom('bulk_runs')
      .selectAll()
      .where('organization_id', '=', org)
      .where('status', 'in', ACTIVE)
      .executeTakeFirst();
  }

  /**
   * Inserts unless the organization has an active run (the partial unique index decides, across
   * replicas). The run's first progress slot is taken with it (`progressEventId`, the event the caller publishes
   * the new run with in the same transaction): the start and the first counted items wait their turn behind that
   * event (≤ 2 per second per run, the first one included).
   */
  async insertUnlessActive(
    db: Db,
    row: Insertable<BulkRunsTable>,
    progressEventId: string,
  ): Promise<BulkRunRow | undefined> {
    return db
      .insertInto('bulk_runs')
      .values({
        ...row,
        version: 1,
        last_progress_at: sql<Date>`now()`,
        last_progress_version: 1,
        last_progress_event_id: progressEventId,
      })
      .onConflict((oc) => oc.column('organization_id').where('status', 'in', ACTIVE).doNothing())
      .returningAll()
      .executeTakeFirst();
  }

  async insertItems(db: Db, runId: string, episodeIds: readonly string[]): Promise<void> {
    if (episodeIds.length === 0) return;
    await sql`
      insert into bulk_run_items (run_id, position, episode_id)
      select ${runId}::uuid, t.ordinality::int, t.id
      from unnest(${episodeIds}::uuid[]) with ordinality as t(id, ordinality)`.execute(db);
  }

  async find(db: Db, id: string, options: { org?: string; lock?: boolean } = {}): Promise<BulkRunRow | undefined> {
    let q = db.selectFrom('bulk_runs').selectAll().where('id', '=', id);
    if (options.org) q = q.where('organization_id', '=', options.org);
    if (options.lock) q = q.forUpdate();
    return q.executeTakeFirst();
  }

  async list(db: Db, org: string, f: BulkRunListFilter, after?: string): Promise<BulkRunRow[]> {
    let q = db.selectFrom('bulk_runs').selectAll().where('organization_id', '=', org);
    if (f.status) q = q.where('status', 'in', f.status);
    if (after) q = q.where('id', '<', after);
    return q
      .orderBy('id', 'desc')
      .limit(f.limit + 1)
      .execute();
  }

  /** Every active run of every organization (the workers' to-do list). */
  async allActive(db: Db): Promise<BulkRunRow[]> {
    return db.selectFrom('bulk_runs').selectAll().where('status', 'in', ACTIVE).orderBy('created_at').execute();
  }

  /** Compare-and-set on the status; bumps the version. */
  async transition(
    db: Db,
    id: string,
    from: readonly BulkRunStatus[],
    to: BulkRunStatus,
    extra: { error_message?: string } = {},
  ): Promise<BulkRunRow | undefined> {
    const terminal = to !== 'queued' && to !== 'running';
    return db
      .updateTable('bulk_runs')
      .set({
        status: to,
        version: sql<number>`version + 1`,
        updated_at: sql<Date>`now()`,
        ...(to === 'running' ? { started_at: sql<Date>`coalesce(started_at, now())` } : {}),
        ...(terminal ? { finished_at: sql<Date>`coalesce(finished_at, now())` } : {}),
        ...(extra.error_message !== undefined ? { error_message: extra.error_message } : {}),
      })
      .where('id', '=', id)
      .where('status', 'in', [...from])
      .returningAll()
      .executeTakeFirst();
  }

  async requestCancel(db: Db, id: string): Promise<BulkRunRow | undefined> {
    return db
      .updateTable('bulk_runs')
      .set({
        cancel_requested_at: sql<Date>`coalesce(cancel_requested_at, now())`,
        version: sql<number>`version + 1`,
        updated_at: sql<Date>`now()`,
      })
      .where('id', '=', id)
      .where('status', 'in', ACTIVE)
      .returningAll()
      .executeTakeFirst();
  }

  /**
   * Counts one processed item in one statement: processed and exactly one outcome counter move together
   * (the table's check constraint refuses anything else), with the failed checks merged in. Only into an
   * active run: an ended run keeps the counters its terminal event carried (an item finishing after a
   * cancel, or on a replica the sweep gave up on, is not counted); undefined then.
   */
  async count(
    db: Db,
    id: string,
    outcome: ItemOutcome,
    failedChecks: readonly string[],
  ): Promise<BulkRunRow | undefined> {
    const merged = sql`(
      select coalesce(jsonb_object_agg(k, n), '{}'::jsonb) from (
        select k, sum(n)::int as n from (
          select key as k, value::int as n from jsonb_each_text(failures_by_check)
          union all select unnest(${[...failedChecks]}::text[]), 1
        ) as counts group by k
      ) as merged)`;
    return db
      .updateTable('bulk_runs')
      .set({
        processed_count: sql<number>`processed_count + 1`,
        passed_count: sql<number>`passed_count + ${outcome === 'passed' ? 1 : 0}`,
        qa_failed_count: sql<number>`qa_failed_count + ${outcome === 'qa_failed' ? 1 : 0}`,
        processing_failed_count: sql<number>`processing_failed_count + ${outcome === 'processing_failed' ? 1 : 0}`,
        skipped_count: sql<number>`skipped_count + ${outcome === 'skipped' ? 1 : 0}`,
        failures_by_check: merged as never,
        version: sql<number>`version + 1`,
        updated_at: sql<Date>`now()`,
      })
      .where('id', '=', id)
      .where('status', 'in', ACTIVE)
      .returningAll()
      .executeTakeFirst();
  }

  /**
   * Notes when the run's last progress event was first seen published (its outbox row marked, so the stream has
   * stored it): the clock the next progress event waits on. Nothing to note while it is unpublished or once noted.
   */
  async noteProgressPublished(db: Db, id: string): Promise<void> {
    await sql`
      update bulk_runs as r set last_progress_published_at = clock_timestamp()
      where r.id = ${id} and r.last_progress_event_id is not null and r.last_progress_published_at is null
        and not exists (select 1 from outbox o where o.id = r.last_progress_event_id and o.published_at is null)`.execute(
      db,
    );
  }

  /**
   * Takes the next progress slot for event `eventId` when one is due: the run moved since the last progress event,
   * and that event was seen published at least `intervalMs` ago (≤ 2/s per run as subscribers receive them, however
   * the relay lags); returns the run then.
   */
  async takeProgressSlot(db: Db, id: string, intervalMs: number, eventId: string): Promise<BulkRunRow | undefined> {
    return db
      .updateTable('bulk_runs')
      .set({
        last_progress_at: sql<Date>`now()`,
        last_progress_version: sql<number>`version`,
        last_progress_event_id: eventId,
        last_progress_published_at: null,
      })
      .where('id', '=', id)
      .where('status', 'in', ACTIVE)
      .where(sql<boolean>`version > last_progress_version`)
      .where((eb) =>
        eb.or([
          eb('last_progress_event_id', 'is', null),
          eb('last_progress_published_at', '<=', sql<Date>`now() - ${`${intervalMs} milliseconds`}::interval`),
        ]),
      )
      .returningAll()
      .executeTakeFirst();
  }

  // ------------------------------------------------------------------------------------------ items

  /**
   * Claims up to `limit` pending items (or items whose claim lapsed: a dead replica's) for this worker,
   * each with a fresh claim token — only while the run is active and nobody asked to cancel it, decided
   * in the same statement (a run cancelled since the worker read it hands out nothing more). The run row
   * is read `for key share`: a cancel (which locks it `for update`) either waits for this claim to commit
   * and then sees its items in flight, or commits first and this statement re-reads the row and claims
   * nothing. Without the lock a claim begun before a cancel could commit after the cancel had found
   * nothing in flight and ended the run, and its items would be checked for a cancelled run.
   */
  async claimItems(db: Db, runId: string, worker: string, leaseMs: number, limit: number): Promise<ClaimedItem[]> {
    if (limit <= 0) return [];
    const { rows } = await sql<ClaimedItem>`
      update bulk_run_items as i
      set status = 'claimed', claimed_by = ${worker}, claim_token = gen_random_uuid(),
          claim_expires_at = now() + ${`${leaseMs} milliseconds`}::interval
      from (
        select run_id, position, claimed_by as taken_from from bulk_run_items
        where run_id = ${runId}
          and (status = 'pending' or (status = 'claimed' and claim_expires_at < now()))
          and exists (
            select 1 from bulk_runs r
            where r.id = ${runId} and r.status in ('queued', 'running') and r.cancel_requested_at is null
            for key share of r)
        order by position
        limit ${limit}
        for update skip locked
      ) as todo
      where i.run_id = todo.run_id and i.position = todo.position
      returning i.*, todo.taken_from`.execute(db);
    return rows;
  }

  /**
   * Hands a taken-over item back for another attempt, rather than letting it be counted skipped, and says whether it
   * did. The worker it was taken from died mid-check: its item claim lapsed first, so the check found the episode
   * "already running" under that worker's claim — which must not count the item skipped (the run would never check
   * it). While that claim lives, this claim of the item lapses with it; once it lapsed, or the sweep released it
   * (which can happen between the check and this statement), at once: either way the item is claimed again and
   * checked. Only an episode some *other* checker holds live is left to be counted skipped, as any item is.
   */
  async handBackTakenOver(db: Db, item: ClaimedItem): Promise<boolean> {
    if (!item.taken_from) return false;
    const { rows } = await sql`
      update bulk_run_items as i
      set claim_expires_at = case when e.claim_id is not null and e.claim_expires_at > now() then e.claim_expires_at
                                  else now() end
      from episodes e
      where i.run_id = ${item.run_id} and i.position = ${item.position}
        and i.status = 'claimed' and i.claim_token = ${item.claim_token}
        and e.id = i.episode_id
        and (e.claim_id is null or e.claimed_by = ${item.taken_from} or e.claim_expires_at <= now())
      returning i.position`.execute(db);
    return rows.length > 0;
  }

  /** Extends this claim of the item; false when the claim lapsed and the item was claimed again. */
  async renewItem(db: Db, item: BulkItemRow, leaseMs: number): Promise<boolean> {
    const res = await db
      .updateTable('bulk_run_items')
      .set({ claim_expires_at: sql<Date>`now() + ${`${leaseMs} milliseconds`}::interval` })
      .where('run_id', '=', item.run_id)
      .where('position', '=', item.position)
      .where('status', '=', 'claimed')
      .where('claim_token', '=', item.claim_token)
      .executeTakeFirst();
    return Number(res.numUpdatedRows) > 0;
  }

  /**
   * Finishes the item under this claim (`error`: why it was counted `processing_failed`); false when the claim lapsed
   * and another claim took it.
   */
  async finishItem(db: Db, item: BulkItemRow, outcome: ItemOutcome, error?: string): Promise<boolean> {
    const res = await db
      .updateTable('bulk_run_items')
      .set({ status: 'done', outcome, claim_expires_at: null, error: error?.slice(0, 1000) ?? null })
      .where('run_id', '=', item.run_id)
      .where('position', '=', item.position)
      .where('status', '=', 'claimed')
      .where('claim_token', '=', item.claim_token)
      .executeTakeFirst();
    return Number(res.numUpdatedRows) > 0;
  }

  /** Items of the run someone is checking right now (claims not lapsed). */
  async inFlight(db: Db, runId: string): Promise<number> {
    const row = await db
      .selectFrom('bulk_run_items')
      .select(sql<number>`count(*)::int`.as('n'))
      .where('run_id', '=', runId)
      .where('status', '=', 'claimed')
      .where('claim_expires_at', '>', sql<Date>`now()`)
      .executeTakeFirstOrThrow();
    return row.n;
  }

  // ---------------------------------------------------------------------------------------- workers

  /** The database's clock (heart-beats and the sweep are measured by it, whatever the replicas' clocks). */
  async now(db: Db): Promise<Date> {
    const { rows } = await sql<{ now: Date }>`select clock_timestamp() as now`.execute(db);
    return rows[0]!.now;
  }

  /**
   * This worker's heart-beat, in one statement, on the active runs it works on: those seen alive since it started
   * (`since`) — executed after that, or heart-beaten after that by any worker, itself included. Returns their ids.
   * A run whose last sign of life predates this worker's start is not beaten: every replica working on it may have
   * died (a restart within BULK_STALE_MS cannot tell), so it is left to go stale and be interrupted rather than
   * adopted; a run alive on another replica shows a fresh heart-beat within one poll and is joined then.
   */
  async heartbeat(db: Db, worker: string, since: Date): Promise<string[]> {
    const { rows } = await sql<{ run_id: string }>`
      insert into bulk_run_workers (run_id, worker_id, heartbeat_at)
      select r.id, ${worker}, now() from bulk_runs r
      where r.status in ('queued', 'running')
        and (r.created_at >= ${since}
             or exists (select 1 from bulk_run_workers w where w.run_id = r.id and w.heartbeat_at >= ${since}))
      on conflict (run_id, worker_id) do update set heartbeat_at = now()
      returning run_id`.execute(db);
    return rows.map((r) => r.run_id);
  }

  /**
   * Active runs nobody has heart-beaten for `staleMs` (every worker died), locked for the sweep: a run
   * alive on another replica is never among them.
   */
  async stale(db: Db, staleMs: number): Promise<BulkRunRow[]> {
    return db
      .selectFrom('bulk_runs as r')
      .selectAll('r')
      .where('r.status', 'in', ACTIVE)
      .where(
        sql<Date>`coalesce((select max(w.heartbeat_at) from bulk_run_workers w where w.run_id = r.id), r.created_at)`,
        '<',
        sql<Date>`now() - ${`${staleMs} milliseconds`}::interval`,
      )
      .forUpdate()
      .skipLocked()
      .execute();
  }
}
