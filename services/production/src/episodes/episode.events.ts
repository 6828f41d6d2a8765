import { type EventPayload, productionConsumers, type qaEpisodeEvents, type uploadEvents } from '@ferry/contracts';
import { type EventContext, EventsHandler } from '@ferry/platform';
import { Controller } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import type { ProductionDB } from '../database.js';
import { EpisodeService } from './episode.service.js';

/** Events production reacts to. Each handler runs inside the inbox transaction; the ack follows its commit. */
@Controller()
export class EpisodeEvents {
  constructor(private readonly episodes: EpisodeService) {}

  @EventsHandler(productionConsumers.uploadVerified)
  async onUploadVerified(
    @Payload() upload: EventPayload<typeof uploadEvents.verified>,
    @Ctx() ctx: EventContext<ProductionDB>,
  ): Promise<void> {
    await this.episodes.onUploadVerified(upload, ctx.trx);
  }

  @EventsHandler(productionConsumers.qaStatus)
  async onQaStatusChanged(
    @Payload() change: EventPayload<typeof qaEpisodeEvents.statusChanged>,
    @Ctx() ctx: EventContext<ProductionDB>,
  ): Promise<void> {
    await this.episodes.onQaStatusChanged(change, ctx.trx);
  }
}
