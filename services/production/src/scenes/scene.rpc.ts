import { type CreateSceneBody, type SceneListQuery, sceneRpc, type UpdateSceneBody } from '@ferry/contracts';
import { type RpcHandlerContext, RpcMethod } from '@ferry/platform';
import { Controller } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import type { ProductionDB } from '../database.js';
import { SceneService } from './scene.service.js';

type Call = RpcHandlerContext<ProductionDB>;

/** NATS entry points for scenes: unpack the request, hand it to the service. */
@Controller()
export class SceneRpc {
  constructor(private readonly scenes: SceneService) {}

  @RpcMethod(sceneRpc.create)
  create(@Payload() req: { scene: CreateSceneBody }, @Ctx() ctx: Call) {
    return this.scenes.create(ctx.call.actor, req.scene, ctx.trx);
  }

  @RpcMethod(sceneRpc.get)
  get(@Payload() req: { id: string }, @Ctx() ctx: Call) {
    return this.scenes.get(ctx.call.actor, req.id);
  }

  @RpcMethod(sceneRpc.list)
  list(@Payload() req: { query: SceneListQuery }, @Ctx() ctx: Call) {
    return this.scenes.list(ctx.call.actor, req.query);
  }

  @RpcMethod(sceneRpc.update)
  update(@Payload() req: { id: string; patch: UpdateSceneBody }, @Ctx() ctx: Call) {
    return this.scenes.update(ctx.call.actor, req.id, req.patch, ctx.trx);
  }

  @RpcMethod(sceneRpc.delete)
  delete(@Payload() req: { id: string }, @Ctx() ctx: Call) {
    return this.scenes.delete(ctx.call.actor, req.id, ctx.trx);
  }
}
