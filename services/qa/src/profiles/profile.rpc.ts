import { type QaProfileListQuery, qaProfileRpc, type RpcRequest } from '@ferry/contracts';
import { type RpcHandlerContext, RpcMethod } from '@ferry/platform';
import { Controller } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import type { QaDB } from '../database.js';
import { ProfileService } from './profile.service.js';

type Call = RpcHandlerContext<QaDB>;

@Controller()
export class ProfileRpc {
  constructor(private readonly profiles: ProfileService) {}

  @RpcMethod(qaProfileRpc.create)
  create(@Payload() req: RpcRequest<typeof qaProfileRpc.create>, @Ctx() ctx: Call) {
    return this.profiles.create(ctx.call.actor, req.profile, ctx.trx);
  }

  @RpcMethod(qaProfileRpc.list)
  list(@Payload() req: { query: QaProfileListQuery }, @Ctx() ctx: Call) {
    return this.profiles.list(ctx.call.actor, req.query);
  }

  @RpcMethod(qaProfileRpc.get)
  get(@Payload() req: { id: string }, @Ctx() ctx: Call) {
    return this.profiles.get(ctx.call.actor, req.id);
  }

  @RpcMethod(qaProfileRpc.update)
  update(@Payload() req: RpcRequest<typeof qaProfileRpc.update>, @Ctx() ctx: Call) {
    return this.profiles.update(ctx.call.actor, req.id, req.patch, ctx.trx);
  }

  @RpcMethod(qaProfileRpc.delete)
  delete(@Payload() req: { id: string }, @Ctx() ctx: Call) {
    return this.profiles.delete(ctx.call.actor, req.id, ctx.trx);
  }
}
