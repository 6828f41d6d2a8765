import {
  type EventPayload,
  uploadLifecycleEvents as lifecycle,
  type productionEvents,
  transferConsumers,
  type uploadLifecycleEvents,
} from '@ferry/contracts';
import { type EventContext, EventsHandler, LOGGER, type Logger, Outbox } from '@ferry/platform';
import { Controller, Inject } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import type { TransferDB } from '../database.js';
import { UploadRepository } from './upload.repository.js';
import { UploadService } from './upload.service.js';
import { UploadVerifier } from './upload.verifier.js';

type Ctx_ = EventContext<TransferDB>;

/**
 * Events transfer reacts to. The ACK handlers run inside the inbox transaction, the ack follows its
 * commit; verification runs outside any transaction and records its verdict by compare-and-set.
 */
@Controller()
export class UploadHandlers {
  constructor(
    private readonly verifier: UploadVerifier,
    private readonly uploads: UploadRepository,
    private readonly service: UploadService,
    private readonly outbox: Outbox,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  /** No transaction here (`transaction: 'handler'`): the verifier opens its own short one for the verdict. */
  @EventsHandler(transferConsumers.verifyUpload)
  async onCompleted(@Payload() payload: EventPayload<typeof uploadLifecycleEvents.completed>): Promise<void> {
    await this.verifier.verify(payload.upload.id);
  }

  /** The ACK: production created the episode for this upload. */
  @EventsHandler(transferConsumers.episodeCreated)
  async onEpisodeCreated(
    @Payload() payload: EventPayload<typeof productionEvents.episode.created>,
    @Ctx() ctx: Ctx_,
  ): Promise<void> {
    const { episode } = payload;
    const moved = await this.uploads.transition(ctx.trx, episode.upload_id, ['verified'], {
      status: 'acknowledged',
      episode_id: episode.id,
      acknowledged_at: new Date(),
    });
    if (!moved) {
      this.logger.debug({ upload_id: episode.upload_id }, 'episode for an upload that is not waiting for it');
      return;
    }
    const upload = await this.service.view(ctx.trx, moved);
    await this.outbox.append(ctx.trx, lifecycle.acknowledged, { upload }, { aggregateId: upload.id });
  }

  /**
   * Production refused a verified upload (the task was cancelled meanwhile, say): it is rejected and its
   * stored object deleted — before the verdict, so a store failure is retried with nothing decided.
   */
  @EventsHandler(transferConsumers.uploadRejected)
  async onUploadRejected(
    @Payload() payload: EventPayload<typeof productionEvents.episode.uploadRejected>,
    @Ctx() ctx: Ctx_,
  ): Promise<void> {
    const row = await this.uploads.find(ctx.trx, payload.upload_id, { lock: true });
    if (row?.status !== 'verified') return;
    await this.service.discardFiles(ctx.trx, row.id);
    const moved = await this.uploads.transition(ctx.trx, payload.upload_id, ['verified'], {
      status: 'rejected',
      rejection_reason: payload.reason,
      rejection_detail: payload.detail,
      rejected_by: 'production',
      acknowledged_at: new Date(),
    });
    if (!moved) return;
    const upload = await this.service.view(ctx.trx, moved);
    await this.outbox.append(ctx.trx, lifecycle.rejected, { upload }, { aggregateId: upload.id });
  }
}
