import { type QaEpisodeListFilter, qaEpisodeRpc, type RpcRequest } from '@ferry/contracts';
import { type RpcHandlerContext, RpcMethod } from '@ferry/platform';
import { Controller } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import type { QaDB } from '../database.js';
import { QaEpisodeService } from './qa-episode.service.js';

type Call = RpcHandlerContext<QaDB>;

@Controller()
export class QaEpisodeRpc {
  constructor(private readonly episodes: QaEpisodeService) {}

  @RpcMethod(qaEpisodeRpc.list)
  list(@Payload() req: { query: QaEpisodeListFilter }, @Ctx() ctx: Call) {
    return this.episodes.list(ctx.call.actor, req.query);
  }

  @RpcMethod(qaEpisodeRpc.get)
  get(@Payload() req: { id: string }, @Ctx() ctx: Call) {
    return this.episodes.get(ctx.call.actor, req.id);
  }

  @RpcMethod(qaEpisodeRpc.history)
  history(@Payload() req: { id: string }, @Ctx() ctx: Call) {
    return this.episodes.history(ctx.call.actor, req.id);
  }

  @RpcMethod(qaEpisodeRpc.run)
  run(@Payload() req: { id: string }, @Ctx() ctx: Call) {
    return this.episodes.run(ctx.call.actor, req.id);
  }

  @RpcMethod(qaEpisodeRpc.review)
  review(@Payload() req: RpcRequest<typeof qaEpisodeRpc.review>, @Ctx() ctx: Call) {
    return this.episodes.review(ctx.call.actor, req.id, req.review, ctx.trx);
  }
}
