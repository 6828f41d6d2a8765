import type { QaCheckResult, QaReview, QaRun } from '@ferry/contracts';
import { Injectable } from '@nestjs/common';
import type { Insertable, Kysely, Selectable } from 'kysely';
import type { QaDB, ReviewsTable, RunsTable } from '../database.js';

type Db = Kysely<QaDB>;
type RunRow = Selectable<RunsTable>;
type ReviewRow = Selectable<ReviewsTable>;

export function toReview(row: ReviewRow): QaReview {
  return {
    id: row.id,
    episode_id: row.episode_id,
    decision: row.decision,
    note: row.note,
    reviewer: row.reviewer,
    from_status: row.from_status,
    to_status: row.to_status,
    created_at: row.created_at.toISOString(),
  };
}

/** The append-only history: runs, one row per check result, reviews. Nothing here is ever updated. */
@Injectable()
export class QaRunRepository {
  async insertRun(db: Db, run: Insertable<RunsTable>, results: readonly QaCheckResult[]): Promise<void> {
    await db.insertInto('runs').values(run).execute();
    if (results.length === 0) return;
    await db
      .insertInto('check_results')
      .values(
        results.map((r, position) => ({
          run_id: run.id,
          position,
          name: r.name,
          version: r.version,
          status: r.status,
          passed: r.passed,
          score: r.score,
          details: r.details,
          metrics: JSON.stringify(r.metrics),
        })),
      )
      .execute();
  }

  async insertReview(db: Db, review: Insertable<ReviewsTable>): Promise<QaReview> {
    return toReview(await db.insertInto('reviews').values(review).returningAll().executeTakeFirstOrThrow());
  }

  /** When a run started (its claim was taken), by the database's clock. */
  async startedAt(db: Db, runId: string): Promise<Date | undefined> {
    const row = await db.selectFrom('runs').select('started_at').where('id', '=', runId).executeTakeFirst();
    return row?.started_at;
  }

  async runsOf(db: Db, episodeId: string): Promise<QaRun[]> {
    const runs = await db
      .selectFrom('runs')
      .selectAll()
      .where('episode_id', '=', episodeId)
      .orderBy('finished_at', 'desc')
      .execute();
    return this.withResults(db, runs);
  }

  async reviewsOf(db: Db, episodeId: string): Promise<QaReview[]> {
    const rows = await db
      .selectFrom('reviews')
      .selectAll()
      .where('episode_id', '=', episodeId)
      .orderBy('created_at', 'desc')
      .execute();
    return rows.map(toReview);
  }

  private async withResults(db: Db, runs: RunRow[]): Promise<QaRun[]> {
    if (runs.length === 0) return [];
    const results = await db
      .selectFrom('check_results')
      .selectAll()
      .where(
        'run_id',
        'in',
        runs.map((r) => r.id),
      )
      .orderBy('run_id')
      .orderBy('position')
      .execute();
    return runs.map((r) => ({
      id: r.id,
      episode_id: r.episode_id,
      organization_id: r.organization_id,
      suite_version: r.suite_version,
      trigger: r.trigger,
      bulk_run_id: r.bulk_run_id,
      requested_by: r.requested_by,
      passed: r.passed,
      score: r.score,
      status_after: r.status_after,
      bytes_read: Number(r.bytes_read),
      duration_ms: r.duration_ms,
      started_at: r.started_at.toISOString(),
      finished_at: r.finished_at.toISOString(),
      results: results
        .filter((x) => x.run_id === r.id)
        .map((x) => ({
          name: x.name,
          version: x.version,
          status: x.status,
          passed: x.passed,
          score: x.score,
          details: x.details,
          metrics: x.metrics,
        })),
    }));
  }
}
