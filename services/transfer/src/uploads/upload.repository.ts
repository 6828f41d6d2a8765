import type { UploadFileRole, UploadListFilter, UploadStatus } from '@ferry/contracts';
import { Injectable } from '@nestjs/common';
import { type Insertable, type Kysely, type Selectable, sql, type Updateable } from 'kysely';
import type { TransferDB, UploadFilesTable, UploadPartsTable, UploadsTable } from '../database.js';

type Db = Kysely<TransferDB>;
export type UploadRow = Selectable<UploadsTable>;
export type UploadFileRow = Selectable<UploadFilesTable>;
export type UploadPartRow = Selectable<UploadPartsTable>;

/** Statuses of an upload still in flight: at most one per task (a partial unique index). */
export const LIVE_STATUSES: readonly UploadStatus[] = ['open', 'verifying', 'verified'];

/** Uploads, their files and received parts; the only place kysely touches these tables. */
@Injectable()
export class UploadRepository {
  /** Inserts unless another upload is live for the task (then undefined: the caller reads that one). */
  async insertIfNoneLive(db: Db, row: Insertable<UploadsTable>): Promise<UploadRow | undefined> {
    return db
      .insertInto('uploads')
      .values(row)
      .onConflict((oc) =>
        oc
          .column('task_id')
          .where('status', 'in', [...LIVE_STATUSES])
          .doNothing(),
      )
      .returningAll()
      .executeTakeFirst();
  }

  async insertFiles(db: Db, rows: Insertable<UploadFilesTable>[]): Promise<void> {
    await db.insertInto('upload_files').values(rows).execute();
  }

  /**
   * The upload in flight for a task of organization `org`. Scoped by organization although task ids are
   * unique: device ids are names, unique per organization only, so an upload found across organizations
   * could be handed to another organization's device of the same name.
   */
  async liveForTask(
    db: Db,
    org: string,
    taskId: string,
    options: { lock?: boolean } = {},
  ): Promise<UploadRow | undefined> {
    let q = db
      .selectFrom('uploads')
      .selectAll()
      .where('organization_id', '=', org)
      .where('task_id', '=', taskId)
      .where('status', 'in', [...LIVE_STATUSES]);
    if (options.lock) q = q.forUpdate();
    return q.executeTakeFirst();
  }

  /** By id; `org` undefined for callers authorized by something else (a signed part URL). */
  async find(db: Db, id: string, options: { org?: string; lock?: boolean } = {}): Promise<UploadRow | undefined> {
    let q = db.selectFrom('uploads').selectAll().where('id', '=', id);
    if (options.org) q = q.where('organization_id', '=', options.org);
    if (options.lock) q = q.forUpdate();
    return q.executeTakeFirst();
  }

  async filesOf(db: Db, uploadIds: readonly string[]): Promise<UploadFileRow[]> {
    if (uploadIds.length === 0) return [];
    return db
      .selectFrom('upload_files')
      .selectAll()
      .where('upload_id', 'in', [...uploadIds])
      .orderBy('upload_id')
      .orderBy('role')
      .execute();
  }

  async partsOf(db: Db, uploadIds: readonly string[]): Promise<UploadPartRow[]> {
    if (uploadIds.length === 0) return [];
    return db
      .selectFrom('upload_parts')
      .selectAll()
      .where('upload_id', 'in', [...uploadIds])
      .orderBy('upload_id')
      .orderBy('role')
      .orderBy('part_number')
      .execute();
  }

  async findPart(
    db: Db,
    uploadId: string,
    role: UploadFileRole,
    partNumber: number,
  ): Promise<UploadPartRow | undefined> {
    return db
      .selectFrom('upload_parts')
      .selectAll()
      .where('upload_id', '=', uploadId)
      .where('role', '=', role)
      .where('part_number', '=', partNumber)
      .executeTakeFirst();
  }

  /** Records a part; a part received again replaces the earlier record (its bytes replaced it too). */
  async upsertPart(db: Db, row: Insertable<UploadPartsTable>): Promise<UploadPartRow> {
    return db
      .insertInto('upload_parts')
      .values(row)
      .onConflict((oc) =>
        oc.columns(['upload_id', 'role', 'part_number']).doUpdateSet((eb) => ({
          size_bytes: eb.ref('excluded.size_bytes'),
          sha256: eb.ref('excluded.sha256'),
          etag: eb.ref('excluded.etag'),
          received_at: eb.ref('excluded.received_at'),
        })),
      )
      .returningAll()
      .executeTakeFirstOrThrow();
  }

  /** Forgets a part's record; true when there was one. */
  async deletePart(db: Db, uploadId: string, role: UploadFileRole, partNumber: number): Promise<boolean> {
    const res = await db
      .deleteFrom('upload_parts')
      .where('upload_id', '=', uploadId)
      .where('role', '=', role)
      .where('part_number', '=', partNumber)
      .executeTakeFirst();
    return Number(res.numDeletedRows) > 0;
  }

  /** Compare-and-set: changes the upload only while its status is one of `from`. */
  async transition(
    db: Db,
    id: string,
    from: readonly UploadStatus[],
    patch: Updateable<UploadsTable>,
  ): Promise<UploadRow | undefined> {
    return db
      .updateTable('uploads')
      .set({ ...patch, updated_at: new Date() })
      .where('id', '=', id)
      .where('status', 'in', [...from])
      .returningAll()
      .executeTakeFirst();
  }

  async touch(db: Db, id: string): Promise<void> {
    await db.updateTable('uploads').set({ last_activity_at: new Date() }).where('id', '=', id).execute();
  }

  /** A page of the organization's uploads; `deviceRef` narrows it to one device record's. */
  async list(db: Db, org: string, f: UploadListFilter, after?: string, deviceRef?: string): Promise<UploadRow[]> {
    let q = db.selectFrom('uploads').selectAll().where('organization_id', '=', org);
    if (deviceRef) q = q.where('device_ref', '=', deviceRef);
    if (f.task_id) q = q.where('task_id', '=', f.task_id);
    if (f.device_id) q = q.where('device_id', '=', f.device_id);
    if (f.status) q = q.where('status', 'in', f.status);
    if (f.created_from) q = q.where('created_at', '>=', new Date(f.created_from));
    if (f.created_to) q = q.where('created_at', '<', new Date(f.created_to));
    if (after) q = q.where('id', '<', after);
    return q
      .orderBy('id', 'desc')
      .limit(f.limit + 1)
      .execute();
  }

  /** Ids of open uploads with no activity since `before`, oldest first (not locked: each is claimed on its own). */
  async idleOpen(db: Db, before: Date, limit: number): Promise<string[]> {
    const rows = await db
      .selectFrom('uploads')
      .select('id')
      .where('status', '=', 'open')
      .where('last_activity_at', '<', before)
      .orderBy('last_activity_at')
      .limit(limit)
      .execute();
    return rows.map((r) => r.id);
  }

  /**
   * The upload, locked, if it is still open with no activity since `before`; undefined when a part arrived
   * meanwhile, it ended, or another replica holds it (SKIP LOCKED: that one is sweeping it).
   */
  async claimIdle(db: Db, id: string, before: Date): Promise<UploadRow | undefined> {
    return db
      .selectFrom('uploads')
      .selectAll()
      .where('id', '=', id)
      .where('status', '=', 'open')
      .where('last_activity_at', '<', before)
      .forUpdate()
      .skipLocked()
      .executeTakeFirst();
  }

  /** Verified uploads production has not acknowledged since `before`, below the republish limit. */
  async unacknowledged(db: Db, before: Date, maxRepublish: number, limit: number): Promise<UploadRow[]> {
    return db
      .selectFrom('uploads')
      .selectAll()
      .where('status', '=', 'verified')
      .where(sql<Date>`coalesce(last_republished_at, verified_at)`, '<', before)
      .where('republish_count', '<', maxRepublish)
      .orderBy('verified_at')
      .limit(limit)
      .forUpdate()
      .skipLocked()
      .execute();
  }

  async markRepublished(db: Db, id: string, count: number, at: Date): Promise<void> {
    await db
      .updateTable('uploads')
      .set({ republish_count: count, last_republished_at: at })
      .where('id', '=', id)
      .execute();
  }

  /** Marks the outbox row of an event unpublished again, so the relay republishes it under its own id. */
  async republishEvent(db: Db, eventId: string): Promise<boolean> {
    const res = await db
      .updateTable('outbox')
      .set({ published_at: null, next_attempt_at: new Date(), attempts: 0 })
      .where('id', '=', eventId)
      .executeTakeFirst();
    return Number(res.numUpdatedRows) > 0;
  }
}
