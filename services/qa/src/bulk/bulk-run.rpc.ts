import { type BulkQaFilters, type BulkRunListFilter, bulkRunRpc } from '@ferry/contracts';
import { type RpcHandlerContext, RpcMethod } from '@ferry/platform';
import { Controller } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import type { QaDB } from '../database.js';
import { BulkRunService } from './bulk-run.service.js';

type Call = RpcHandlerContext<QaDB>;

@Controller()
export class BulkRunRpc {
  constructor(private readonly runs: BulkRunService) {}

  @RpcMethod(bulkRunRpc.preview)
  preview(@Payload() req: { filters: BulkQaFilters }, @Ctx() ctx: Call) {
    return this.runs.preview(ctx.call.actor, req.filters);
  }

  @RpcMethod(bulkRunRpc.execute)
  execute(@Payload() req: { filters: BulkQaFilters }, @Ctx() ctx: Call) {
    return this.runs.execute(ctx.call.actor, req.filters, ctx.trx);
  }

  @RpcMethod(bulkRunRpc.get)
  get(@Payload() req: { id: string }, @Ctx() ctx: Call) {
    return this.runs.get(ctx.call.actor, req.id);
  }

  @RpcMethod(bulkRunRpc.current)
  current(@Ctx() ctx: Call) {
    return this.runs.current(ctx.call.actor);
  }

  @RpcMethod(bulkRunRpc.list)
  list(@Payload() req: { query: BulkRunListFilter }, @Ctx() ctx: Call) {
    return this.runs.list(ctx.call.actor, req.query);
  }

  @RpcMethod(bulkRunRpc.cancel)
  cancel(@Payload() req: { id: string }, @Ctx() ctx: Call) {
    return this.runs.cancel(ctx.call.actor, req.id, ctx.trx);
  }
}
