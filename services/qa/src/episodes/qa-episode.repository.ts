import type { Episode, QaEpisode, QaEpisodeListFilter } from '@ferry/contracts';
import { Injectable } from '@nestjs/common';
import { type Kysely, type Selectable, sql, type Updateable } from 'kysely';
import type { DevicesTable, EpisodesTable, QaDB } from '../database.js';

type Db = Kysely<QaDB>;
export type QaEpisodeRow = Selectable<EpisodesTable>;
export type DeviceRow = Selectable<DevicesTable>;

export function toQaEpisode(row: QaEpisodeRow): QaEpisode {
  return {
    id: row.id,
    organization_id: row.organization_id,
    task_id: row.task_id,
    order_id: row.order_id,
    scene_id: row.scene_id,
    device_id: row.device_id,
    robot_type: row.robot_type,
    qa_status: row.qa_status,
    qa_score: row.qa_score,
    failed_checks: row.failed_checks,
    last_run_id: row.last_run_id,
    files: { mcap: row.mcap, sidecar: row.sidecar },
    labels: row.labels,
    created_at: row.episode_created_at.toISOString(),
    status_changed_at: row.status_changed_at.toISOString(),
  };
}

/** QA's projection of episodes and devices, and the per-episode claim; the only place kysely touches them. */
@Injectable()
export class QaEpisodeRepository {
  /** Projects a new episode (a redelivered event changes nothing). */
  async project(db: Db, e: Episode, robotType: string | null): Promise<void> {
    await db
      .insertInto('episodes')
      .values({
        id: e.id,
        organization_id: e.organization_id,
        task_id: e.task_id,
        order_id: e.order_id,
        scene_id: e.scene_id,
        batch_id: e.batch_id,
        device_id: e.device_id,
        robot_type: robotType,
        upload_id: e.upload_id,
        mcap: JSON.stringify(e.files.mcap),
        sidecar: e.files.sidecar ? JSON.stringify(e.files.sidecar) : null,
        recording: e.recording ? JSON.stringify(e.recording) : null,
        labels: e.labels,
        episode_created_at: e.created_at,
        source_updated_at: e.updated_at,
      })
      .onConflict((oc) => oc.column('id').doNothing())
      .execute();
  }

  /**
   * Labels follow production's episode, unless QA already has a newer version of it (`stale`);
   * `missing` when the episode is not projected yet.
   */
  async setLabels(db: Db, id: string, labels: string[], version: Date): Promise<'applied' | 'stale' | 'missing'> {
    const res = await db
      .updateTable('episodes')
      .set({ labels, source_updated_at: version })
      .where('id', '=', id)
      .where((eb) => eb.or([eb('source_updated_at', 'is', null), eb('source_updated_at', '<=', version)]))
      .executeTakeFirst();
    if (Number(res.numUpdatedRows) > 0) return 'applied';
    return (await this.find(db, id)) ? 'stale' : 'missing';
  }

  /**
   * The database's clock, read now: every replica stamps claims and status changes from this one clock,
   * so their order does not depend on how well the replicas' clocks agree. Read after locking the episode,
   * it orders changes as their locks did; `now()` (the transaction's start) would not: a transaction that
   * began first, then waited for the row, would stamp its later change as the older one.
   */
  async now(db: Db): Promise<Date> {
    const { rows } = await sql<{ now: Date }>`select clock_timestamp() as now`.execute(db);
    return rows[0]!.now;
  }

  async find(db: Db, id: string, options: { org?: string; lock?: boolean } = {}): Promise<QaEpisodeRow | undefined> {
    let q = db.selectFrom('episodes').selectAll().where('id', '=', id);
    if (options.org) q = q.where('organization_id', '=', options.org);
    if (options.lock) q = q.forUpdate();
    return q.executeTakeFirst();
  }

  async update(db: Db, id: string, patch: Updateable<EpisodesTable>): Promise<QaEpisodeRow> {
    return db.updateTable('episodes').set(patch).where('id', '=', id).returningAll().executeTakeFirstOrThrow();
  }

  /** Renews a claim while the check runs; false when it is no longer ours (it expired and was taken). */
  async renewClaim(db: Db, id: string, claimId: string, leaseMs: number): Promise<boolean> {
    const res = await db
      .updateTable('episodes')
      .set({ claim_expires_at: sql<Date>`now() + ${`${leaseMs} milliseconds`}::interval` })
      .where('id', '=', id)
      .where('claim_id', '=', claimId)
      .executeTakeFirst();
    return Number(res.numUpdatedRows) > 0;
  }

  /** Episodes whose claim lapsed (a dead checker), locked for release; other replicas skip them. */
  async expiredClaims(db: Db, limit: number): Promise<QaEpisodeRow[]> {
    return db
      .selectFrom('episodes')
      .selectAll()
      .where('claim_id', 'is not', null)
      .where('claim_expires_at', '<', sql<Date>`now()`)
      .limit(limit)
      .forUpdate()
      .skipLocked()
      .execute();
  }

  /**
   * Episodes auto QA left behind, locked for re-driving (other replicas skip them): still `pending_qa`, unclaimed, never
   * checked, untouched since `before`, below `maxRedrives`, and either never re-driven or their last re-drive answered
   * — a check attempted it (every attempt moves the status, so it changed after the re-drive) — or unanswered since
   * `unansweredBefore` (the request was lost). A request still queued moves nothing: re-driving its episode again would
   * only queue it twice. Oldest first.
   */
  async stalled(
    db: Db,
    o: { before: Date; unansweredBefore: Date; maxRedrives: number; limit: number },
  ): Promise<QaEpisodeRow[]> {
    return db
      .selectFrom('episodes')
      .selectAll()
      .where('qa_status', '=', 'pending_qa')
      .where('claim_id', 'is', null)
      .where('last_run_id', 'is', null)
      .where('status_changed_at', '<', o.before)
      .where((eb) =>
        eb.or([
          eb('redriven_at', 'is', null),
          eb('status_changed_at', '>', eb.ref('redriven_at')),
          eb('redriven_at', '<', o.unansweredBefore),
        ]),
      )
      .where('redrive_count', '<', o.maxRedrives)
      .orderBy('status_changed_at')
      .limit(o.limit)
      .forUpdate()
      .skipLocked()
      .execute();
  }

  async list(db: Db, org: string, f: QaEpisodeListFilter, after?: string): Promise<QaEpisodeRow[]> {
    let q = db.selectFrom('episodes').selectAll().where('organization_id', '=', org);
    if (f.status) q = q.where('qa_status', 'in', f.status);
    if (f.scene_id) q = q.where('scene_id', '=', f.scene_id);
    if (f.device_id) q = q.where('device_id', '=', f.device_id);
    if (f.robot_type) q = q.where('robot_type', '=', f.robot_type);
    if (f.check_failed) {
      const check = f.check_failed;
      q = q.where(
        check.includes('@')
          ? sql<boolean>`${check} = any(failed_checks)`
          : sql<boolean>`exists (select 1 from unnest(failed_checks) as fc(name) where split_part(fc.name, '@', 1) = ${check})`,
      );
    }
    if (f.created_from) q = q.where('episode_created_at', '>=', new Date(f.created_from));
    if (f.created_to) q = q.where('episode_created_at', '<', new Date(f.created_to));
    if (after) q = q.where('id', '<', after);
    return q
      .orderBy('id', 'desc')
      .limit(f.limit + 1)
      .execute();
  }

  // ------------------------------------------------------------------------------------- devices

  /**
   * Applies a device event unless a newer one was applied already: `version` is the device's own
   * updated_at (its deleted_at for a deletion), so an event redelivered or overtaken on another replica
   * never puts an older robot type or topic list back.
   */
  async upsertDevice(
    db: Db,
    d: {
      organization_id: string;
      device_id: string;
      robot_type: string | null;
      expected_topics: string[];
      deleted: boolean;
      version: Date;
    },
  ): Promise<boolean> {
    const { version, ...values } = d;
    const res = await db
      .insertInto('devices')
      .values({ ...values, updated_at: version })
      .onConflict((oc) =>
        oc
          .columns(['organization_id', 'device_id'])
          .doUpdateSet({
            robot_type: d.robot_type,
            expected_topics: d.expected_topics,
            deleted: d.deleted,
            updated_at: version,
          })
          .where('devices.updated_at', '<=', version),
      )
      .executeTakeFirst();
    return Number(res.numInsertedOrUpdatedRows ?? 0n) > 0;
  }

  /**
   * Serializes, until `db`'s transaction ends, the transactions that project an episode of this device and those that
   * apply an event of it: each then sees what the other committed (a device row may not exist yet to lock).
   */
  async lockDevice(db: Db, org: string, deviceId: string): Promise<void> {
    await sql`select pg_advisory_xact_lock(hashtextextended(${`qa-device/${org}/${deviceId}`}, 0))`.execute(db);
  }

  async device(db: Db, org: string, deviceId: string): Promise<DeviceRow | undefined> {
    return db
      .selectFrom('devices')
      .selectAll()
      .where('organization_id', '=', org)
      .where('device_id', '=', deviceId)
      .executeTakeFirst();
  }

  /**
   * A device's robot type reaches the episodes projected before its event arrived (events cross streams); answers
   * the episodes it reached, with what deciding on a recheck needs (no recordings or labels: this runs in the device
   * event's inbox transaction, over every episode of the device).
   */
  async fillRobotType(
    db: Db,
    org: string,
    deviceId: string,
    robotType: string,
  ): Promise<Pick<QaEpisodeRow, 'id' | 'organization_id' | 'scene_id' | 'qa_status' | 'status_before_claim'>[]> {
    return db
      .updateTable('episodes')
      .set({ robot_type: robotType })
      .where('organization_id', '=', org)
      .where('device_id', '=', deviceId)
      .where('robot_type', 'is', null)
      .returning(['id', 'organization_id', 'scene_id', 'qa_status', 'status_before_claim'])
      .execute();
  }
}
