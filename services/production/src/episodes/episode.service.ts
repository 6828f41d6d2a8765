import {
  type Actor,
  type Episode,
  type EpisodeListFilter,
  type EventPayload,
  episodeEvents,
  type Page,
  type qaEpisodeEvents,
  type TaskStatus,
  type UploadRejectionReason,
  type uploadEvents,
} from '@ferry/contracts';
import {
  decodeCursor,
  isDomainError,
  isIdCursor,
  LOGGER,
  type Logger,
  newId,
  notFound,
  Outbox,
  toPage,
} from '@ferry/platform';
import { Inject, Injectable } from '@nestjs/common';
import { Kysely, type Transaction } from 'kysely';

import { BatchRepository } from '../batches/batch.repository.js';
import type { ProductionDB } from '../database.js';
import { TaskLocks } from '../tasks/task.locks.js';
import { TaskOutcomes } from '../tasks/task.outcomes.js';
import { WorkstationRepository } from '../workstations/workstation.repository.js';
import { EpisodeRepository, toEpisode } from './episode.repository.js';

type UploadVerified = EventPayload<typeof uploadEvents.verified>;

export type UploadOutcome =
  | { kind: 'created'; episode: Episode }
  | { kind: 'rejected'; reason: UploadRejectionReason }
  | { kind: 'duplicate' };

/** Episodes: created exactly once per task from a verified upload (DESIGN §5). */
@Injectable()
export class EpisodeService {
  constructor(
    private readonly db: Kysely<ProductionDB>,
    private readonly episodes: EpisodeRepository,
    private readonly locks: TaskLocks,
    private readonly outcomes: TaskOutcomes,
    private readonly batches: BatchRepository,
    private readonly workstations: WorkstationRepository,
    private readonly outbox: Outbox,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  async get(actor: Actor, id: string): Promise<Episode> {
    const row = await this.episodes.find(this.db, actor.org, id);
    if (!row) throw notFound('Episode', id);
    return toEpisode(row);
  }

  async list(actor: Actor, filter: EpisodeListFilter): Promise<Page<Episode>> {
    const after = filter.cursor ? decodeCursor(filter.cursor, isIdCursor).id : undefined;
    const rows = await this.episodes.list(this.db, actor.org, filter, after);
    return toPage(rows, filter.limit, toEpisode, (r) => ({ id: r.id }));
  }

  /**
   * Keeps the read copy of the episode's QA status (QA owns it) for the `qa_status` filters; a change
   * older than the one already applied is ignored (at a tie, one that does not continue from it). No event: the status is QA's fact, not production's.
   */
  async onQaStatusChanged(
    change: EventPayload<typeof qaEpisodeEvents.statusChanged>,
    trx: Transaction<ProductionDB>,
  ): Promise<void> {
    await this.episodes.applyQaStatus(trx, change.episode_id, {
      from: change.from,
      to: change.to,
      changedAt: new Date(change.changed_at),
    });
  }

  /**
   * Turns a verified upload into the task's one episode, in the inbox transaction: lock order, batch
   * and task; check the uploading device owns the task's workstation and the task can still complete;
   * insert the episode (a partial unique index backs "one live episode per task"); count it on the
   * batch; complete the task; advance batch and order; write episode.created. Any refusal writes
   * upload.rejected with a machine-readable reason instead, and changes nothing else.
   */
  async onUploadVerified(upload: UploadVerified, trx: Transaction<ProductionDB>): Promise<UploadOutcome> {
    const reject = async (reason: UploadRejectionReason, detail: string): Promise<UploadOutcome> => {
      this.logger.warn({ upload_id: upload.upload_id, task_id: upload.task_id, reason }, 'verified upload rejected');
      await this.outbox.append(
        trx,
        episodeEvents.uploadRejected,
        {
          upload_id: upload.upload_id,
          organization_id: upload.organization_id,
          task_id: upload.task_id,
          device_id: upload.device_id,
          reason,
          detail,
        },
        { aggregateId: upload.upload_id },
      );
      return { kind: 'rejected', reason };
    };

    let locked: Awaited<ReturnType<TaskLocks['lock']>>;
    try {
      locked = await this.locks.lock(trx, upload.task_id);
    } catch (err) {
      if (isDomainError(err) && err.code === 'not_found')
        return reject('task_not_found', `task ${upload.task_id} does not exist`);
      throw err;
    }
    const { order, batch, task } = locked;
    if (task.organization_id !== upload.organization_id) {
      return reject('organization_mismatch', `task ${task.id} belongs to another organization than the upload`);
    }
    const ws = await this.workstations.findById(trx, task.workstation_id);
    if (!ws || ws.device_id !== upload.device_id) {
      return reject(
        'not_owner',
        `device ${upload.device_id} does not own task ${task.id} (bound to ${ws?.device_id ?? 'nothing'})`,
      );
    }
    const existing = await this.episodes.liveForTask(trx, task.id);
    if (existing) {
      // The same upload again (a replay that bypassed the inbox) changes nothing; another upload is refused.
      if (existing.upload_id === upload.upload_id) return { kind: 'duplicate' };
      return reject(
        'task_has_episode',
        `task ${task.id} already has episode ${existing.id} from upload ${existing.upload_id}`,
      );
    }
    const status = task.status as TaskStatus;
    if (status === 'cancelled') return reject('task_cancelled', `task ${task.id} was cancelled`);
    if (status === 'failed')
      return reject('task_failed', `task ${task.id} failed: ${task.error_message ?? 'no reason given'}`);

    const row = await this.episodes.insert(trx, {
      id: newId(),
      organization_id: task.organization_id,
      task_id: task.id,
      batch_id: task.batch_id,
      order_id: task.order_id,
      scene_id: task.scene_id,
      workstation_id: task.workstation_id,
      device_id: upload.device_id,
      upload_id: upload.upload_id,
      mcap: upload.files.mcap,
      sidecar: upload.files.sidecar ?? null,
      recording: upload.recording,
    });
    await this.batches.incrementEpisodeCount(trx, batch.id);
    await this.outcomes.record(
      trx,
      { order, batch, task: { ...task, episode_id: row.id } },
      'complete',
      'upload_verified',
    );
    const episode = toEpisode(row);
    await this.outbox.append(trx, episodeEvents.created, { episode }, { aggregateId: episode.id });
    return { kind: 'created', episode };
  }
}
