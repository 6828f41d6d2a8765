import {
  type AdjustTaskGroupsBody,
  type BatchListFilter,
  batchRpc,
  type CreateBatchBody,
  type UpdateBatchBody,
} from '@ferry/contracts';
import { type RpcHandlerContext, RpcMethod } from '@ferry/platform';
import { Controller } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import type { ProductionDB } from '../database.js';
import { BatchService } from './batch.service.js';

type Call = RpcHandlerContext<ProductionDB>;

@Controller()
export class BatchRpc {
  constructor(private readonly batches: BatchService) {}

  @RpcMethod(batchRpc.create)
  create(@Payload() req: { batch: CreateBatchBody }, @Ctx() ctx: Call) {
    return this.batches.create(ctx.call.actor, req.batch, ctx.trx);
  }

  @RpcMethod(batchRpc.get)
  get(@Payload() req: { id: string }, @Ctx() ctx: Call) {
    return this.batches.get(ctx.call.actor, req.id);
  }

  @RpcMethod(batchRpc.list)
  list(@Payload() req: { query: BatchListFilter }, @Ctx() ctx: Call) {
    return this.batches.list(ctx.call.actor, req.query);
  }

  @RpcMethod(batchRpc.update)
  update(@Payload() req: { id: string; patch: UpdateBatchBody }, @Ctx() ctx: Call) {
    return this.batches.update(ctx.call.actor, req.id, req.patch, ctx.trx);
  }

  @RpcMethod(batchRpc.adjust)
  adjust(@Payload() req: { id: string; task_groups: AdjustTaskGroupsBody['task_groups'] }, @Ctx() ctx: Call) {
    return this.batches.adjust(ctx.call.actor, req.id, req.task_groups, ctx.trx);
  }

  @RpcMethod(batchRpc.recall)
  recall(@Payload() req: { id: string }, @Ctx() ctx: Call) {
    return this.batches.recall(ctx.call.actor, req.id, ctx.trx);
  }

  @RpcMethod(batchRpc.delete)
  delete(@Payload() req: { id: string }, @Ctx() ctx: Call) {
    return this.batches.delete(ctx.call.actor, req.id, ctx.trx);
  }
}
