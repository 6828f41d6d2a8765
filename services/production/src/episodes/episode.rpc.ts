import { type EpisodeListFilter, episodeRpc } from '@ferry/contracts';
import { type RpcHandlerContext, RpcMethod } from '@ferry/platform';
import { Controller } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import type { ProductionDB } from '../database.js';
import { EpisodeService } from './episode.service.js';

type Call = RpcHandlerContext<ProductionDB>;

@Controller()
export class EpisodeRpc {
  constructor(private readonly episodes: EpisodeService) {}

  @RpcMethod(episodeRpc.get)
  get(@Payload() req: { id: string }, @Ctx() ctx: Call) {
    return this.episodes.get(ctx.call.actor, req.id);
  }

  @RpcMethod(episodeRpc.list)
  list(@Payload() req: { query: EpisodeListFilter }, @Ctx() ctx: Call) {
    return this.episodes.list(ctx.call.actor, req.query);
  }
}
