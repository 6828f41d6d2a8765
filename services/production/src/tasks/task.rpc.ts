import {
  type CreateTaskBody,
  type CreateTasksBody,
  type DeviceTaskListFilter,
  type TaskListFilter,
  taskRpc,
} from '@ferry/contracts';
import { type RpcHandlerContext, RpcMethod } from '@ferry/platform';
import { Controller } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import type { ProductionDB } from '../database.js';
import { TaskService } from './task.service.js';

type Call = RpcHandlerContext<ProductionDB>;

@Controller()
export class TaskRpc {
  constructor(private readonly tasks: TaskService) {}

  @RpcMethod(taskRpc.createInOrder)
  createInOrder(@Payload() req: { order_id: string; task: CreateTaskBody }, @Ctx() ctx: Call) {
    return this.tasks.createInOrder(ctx.call.actor, req.order_id, req.task, ctx.trx);
  }

  @RpcMethod(taskRpc.bulkCreate)
  bulkCreate(@Payload() req: { order_id: string; items: CreateTaskBody[] }, @Ctx() ctx: Call) {
    return this.tasks.bulkCreate(ctx.call.actor, req.order_id, req.items, ctx.trx);
  }

  @RpcMethod(taskRpc.createMany)
  createMany(@Payload() req: CreateTasksBody, @Ctx() ctx: Call) {
    return this.tasks.createMany(ctx.call.actor, req, ctx.trx);
  }

  @RpcMethod(taskRpc.get)
  get(@Payload() req: { id: string }, @Ctx() ctx: Call) {
    return this.tasks.get(ctx.call.actor, req.id);
  }

  @RpcMethod(taskRpc.list)
  list(@Payload() req: { query: TaskListFilter }, @Ctx() ctx: Call) {
    return this.tasks.list(ctx.call.actor, req.query);
  }

  @RpcMethod(taskRpc.delete)
  delete(@Payload() req: { id: string }, @Ctx() ctx: Call) {
    return this.tasks.delete(ctx.call.actor, req.id, ctx.trx);
  }

  @RpcMethod(taskRpc.config)
  config(@Payload() req: { id: string }, @Ctx() ctx: Call) {
    return this.tasks.config(ctx.call.actor, req.id);
  }

  @RpcMethod(taskRpc.uploadEligibility)
  uploadEligibility(@Payload() req: { id: string; device_id: string }, @Ctx() ctx: Call) {
    return this.tasks.uploadEligibility(ctx.call.actor, req.id, req.device_id);
  }

  @RpcMethod(taskRpc.listForDevice)
  listForDevice(@Payload() req: { device_id: string; query: DeviceTaskListFilter }, @Ctx() ctx: Call) {
    return this.tasks.listForDevice(ctx.call.actor, req.device_id, req.query);
  }

  @RpcMethod(taskRpc.deviceAction)
  deviceAction(
    @Payload() req: { id: string; action: 'ready' | 'start' | 'finish' | 'fail'; device_id: string; reason?: string },
    @Ctx() ctx: Call,
  ) {
    return this.tasks.deviceAction(ctx.call.actor, req, ctx.trx);
  }
}
