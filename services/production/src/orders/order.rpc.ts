import { type CreateOrderBody, type OrderListQuery, orderRpc, type UpdateOrderBody } from '@ferry/contracts';
import { type RpcHandlerContext, RpcMethod } from '@ferry/platform';
import { Controller } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import type { ProductionDB } from '../database.js';
import { OrderService } from './order.service.js';

type Call = RpcHandlerContext<ProductionDB>;

/** NATS entry points for orders. */
@Controller()
export class OrderRpc {
  constructor(private readonly orders: OrderService) {}

  @RpcMethod(orderRpc.create)
  create(@Payload() req: { order: CreateOrderBody }, @Ctx() ctx: Call) {
    return this.orders.create(ctx.call.actor, req.order, ctx.trx);
  }

  @RpcMethod(orderRpc.get)
  get(@Payload() req: { id: string }, @Ctx() ctx: Call) {
    return this.orders.get(ctx.call.actor, req.id);
  }

  @RpcMethod(orderRpc.list)
  list(@Payload() req: { query: OrderListQuery }, @Ctx() ctx: Call) {
    return this.orders.list(ctx.call.actor, req.query);
  }

  @RpcMethod(orderRpc.update)
  update(@Payload() req: { id: string; patch: UpdateOrderBody }, @Ctx() ctx: Call) {
    return this.orders.update(ctx.call.actor, req.id, req.patch, ctx.trx);
  }

  @RpcMethod(orderRpc.delete)
  delete(@Payload() req: { id: string }, @Ctx() ctx: Call) {
    return this.orders.delete(ctx.call.actor, req.id, ctx.trx);
  }
}
