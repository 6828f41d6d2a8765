import type { Episode, EpisodeListFilter, QaStatus, RecordingMetadata, UploadedFile } from '@ferry/contracts';
import { Injectable } from '@nestjs/common';
import { type Kysely, type Selectable, sql } from 'kysely';
import type { EpisodesTable, ProductionDB } from '../database.js';

type Db = Kysely<ProductionDB>;
export type EpisodeRow = Selectable<EpisodesTable>;

export function toEpisode(row: EpisodeRow): Episode {
  return {
    id: row.id,
    organization_id: row.organization_id,
    task_id: row.task_id,
    batch_id: row.batch_id,
    order_id: row.order_id,
    scene_id: row.scene_id,
    workstation_id: row.workstation_id,
    device_id: row.device_id,
    upload_id: row.upload_id,
    files: { mcap: row.mcap, sidecar: row.sidecar },
    recording: row.recording as RecordingMetadata | null,
    qa_status: row.qa_status as QaStatus,
    labels: row.labels,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
}

export interface NewEpisode {
  id: string;
  organization_id: string;
  task_id: string;
  batch_id: string;
  order_id: string;
  scene_id: string;
  workstation_id: string;
  device_id: string;
  upload_id: string;
  mcap: UploadedFile;
  sidecar: UploadedFile | null;
  recording: RecordingMetadata | null;
}

@Injectable()
export class EpisodeRepository {
  async insert(db: Db, e: NewEpisode): Promise<EpisodeRow> {
    return db
      .insertInto('episodes')
      .values({
        ...e,
        mcap: JSON.stringify(e.mcap),
        sidecar: e.sidecar ? JSON.stringify(e.sidecar) : null,
        recording: e.recording ? JSON.stringify(e.recording) : null,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
  }

  async liveForTask(db: Db, taskId: string): Promise<EpisodeRow | undefined> {
    return db
      .selectFrom('episodes')
      .selectAll()
      .where('task_id', '=', taskId)
      .where('deleted_at', 'is', null)
      .executeTakeFirst();
  }

  async find(db: Db, org: string, id: string): Promise<EpisodeRow | undefined> {
    return db
      .selectFrom('episodes')
      .selectAll()
      .where('id', '=', id)
      .where('organization_id', '=', org)
      .where('deleted_at', 'is', null)
      .executeTakeFirst();
  }

  async list(db: Db, org: string, f: EpisodeListFilter, after?: string): Promise<EpisodeRow[]> {
    let q = db.selectFrom('episodes').selectAll().where('organization_id', '=', org).where('deleted_at', 'is', null);
    if (f.scene_id) q = q.where('scene_id', '=', f.scene_id);
    if (f.order_id) q = q.where('order_id', '=', f.order_id);
    if (f.batch_id) q = q.where('batch_id', '=', f.batch_id);
    if (f.workstation_id) q = q.where('workstation_id', '=', f.workstation_id);
    if (f.task_id) q = q.where('task_id', '=', f.task_id);
    if (f.device_id) q = q.where('device_id', '=', f.device_id);
    if (f.qa_status) q = q.where('qa_status', 'in', f.qa_status);
    if (f.label) q = q.where(sql<boolean>`labels @> array[${f.label}]::text[]`);
    if (f.created_from) q = q.where('created_at', '>=', new Date(f.created_from));
    if (f.created_to) q = q.where('created_at', '<', new Date(f.created_to));
    if (after) q = q.where('id', '<', after);
    return q
      .orderBy('id', 'desc')
      .limit(f.limit + 1)
      .execute();
  }

  /**
   * Applies QA's status change `from → to` to the read copy unless a later change is already there (events
   * may arrive out of order). Two changes can carry the same millisecond (a quick check): at a tie the
   * change applies only where it continues from the status the copy holds.
   */
  async applyQaStatus(
    db: Db,
    id: string,
    change: { from: QaStatus; to: QaStatus; changedAt: Date },
  ): Promise<EpisodeRow | undefined> {
    return db
      .updateTable('episodes')
      .set({ qa_status: change.to, qa_status_changed_at: change.changedAt, updated_at: new Date() })
      .where('id', '=', id)
      .where((eb) =>
        eb.or([
          eb('qa_status_changed_at', 'is', null),
          eb('qa_status_changed_at', '<', change.changedAt),
          eb.and([eb('qa_status_changed_at', '=', change.changedAt), eb('qa_status', '=', change.from)]),
        ]),
      )
      .returningAll()
      .executeTakeFirst();
  }

  /** Adds `label` to the batch's live episodes that lack it (idempotent); returns those changed. */
  async addLabel(db: Db, batchId: string, label: string): Promise<EpisodeRow[]> {
    return db
      .updateTable('episodes')
      .set({ labels: sql<string[]>`array_append(labels, ${label})`, updated_at: new Date() })
      .where('batch_id', '=', batchId)
      .where('deleted_at', 'is', null)
      .where(sql<boolean>`not (labels @> array[${label}]::text[])`)
      .returningAll()
      .execute();
  }
}
