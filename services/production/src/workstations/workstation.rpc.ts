import {
  type CreateWorkstationBody,
  type UpdateWorkstationBody,
  type WorkstationListFilter,
  workstationRpc,
} from '@ferry/contracts';
import { type RpcHandlerContext, RpcMethod } from '@ferry/platform';
import { Controller } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import type { ProductionDB } from '../database.js';
import { WorkstationService } from './workstation.service.js';

type Call = RpcHandlerContext<ProductionDB>;

@Controller()
export class WorkstationRpc {
  constructor(private readonly workstations: WorkstationService) {}

  @RpcMethod(workstationRpc.create)
  create(@Payload() req: { workstation: CreateWorkstationBody }, @Ctx() ctx: Call) {
    return this.workstations.create(ctx.call.actor, req.workstation, ctx.trx);
  }

  @RpcMethod(workstationRpc.get)
  get(@Payload() req: { id: string }, @Ctx() ctx: Call) {
    return this.workstations.get(ctx.call.actor, req.id);
  }

  @RpcMethod(workstationRpc.list)
  list(@Payload() req: { query: WorkstationListFilter }, @Ctx() ctx: Call) {
    return this.workstations.list(ctx.call.actor, req.query);
  }

  @RpcMethod(workstationRpc.update)
  update(@Payload() req: { id: string; patch: UpdateWorkstationBody }, @Ctx() ctx: Call) {
    return this.workstations.update(ctx.call.actor, req.id, req.patch, ctx.trx);
  }

  @RpcMethod(workstationRpc.unbind)
  unbind(@Payload() req: { id: string }, @Ctx() ctx: Call) {
    return this.workstations.unbind(ctx.call.actor, req.id, ctx.trx);
  }
}
