import {
  type CreateDeviceBody,
  type DeviceListFilter,
  deviceRpc,
  type RpcRequest,
  type UpdateDeviceBody,
} from '@ferry/contracts';
import { type RpcHandlerContext, RpcMethod } from '@ferry/platform';
import { Controller } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import type { TransferDB } from '../database.js';
import { DeviceService } from './device.service.js';

type Call = RpcHandlerContext<TransferDB>;

@Controller()
export class DeviceRpc {
  constructor(private readonly devices: DeviceService) {}

  @RpcMethod(deviceRpc.create)
  create(@Payload() req: { device: CreateDeviceBody }, @Ctx() ctx: Call) {
    return this.devices.create(ctx.call.actor, req.device, ctx.trx);
  }

  @RpcMethod(deviceRpc.get)
  get(@Payload() req: { id: string }, @Ctx() ctx: Call) {
    return this.devices.get(ctx.call.actor, req.id);
  }

  @RpcMethod(deviceRpc.list)
  list(@Payload() req: { query: DeviceListFilter }, @Ctx() ctx: Call) {
    return this.devices.list(ctx.call.actor, req.query);
  }

  @RpcMethod(deviceRpc.update)
  update(@Payload() req: { id: string; patch: UpdateDeviceBody }, @Ctx() ctx: Call) {
    return this.devices.update(ctx.call.actor, req.id, req.patch, ctx.trx);
  }

  @RpcMethod(deviceRpc.delete)
  delete(@Payload() req: { id: string }, @Ctx() ctx: Call) {
    return this.devices.delete(ctx.call.actor, req.id, ctx.trx);
  }

  @RpcMethod(deviceRpc.createPairingToken)
  createPairingToken(@Payload() req: RpcRequest<typeof deviceRpc.createPairingToken>, @Ctx() ctx: Call) {
    return this.devices.createPairingToken(ctx.call.actor, req.id, req.ttl_seconds, ctx.trx);
  }

  @RpcMethod(deviceRpc.redeemPairingToken)
  redeem(@Payload() req: RpcRequest<typeof deviceRpc.redeemPairingToken>, @Ctx() ctx: Call) {
    return this.devices.redeem(req.pairing_token, req.label, ctx.trx);
  }

  @RpcMethod(deviceRpc.listTokens)
  listTokens(@Payload() req: { id: string }, @Ctx() ctx: Call) {
    return this.devices.listTokens(ctx.call.actor, req.id);
  }

  @RpcMethod(deviceRpc.revokeToken)
  revokeToken(@Payload() req: { id: string; token_id: string }, @Ctx() ctx: Call) {
    return this.devices.revokeToken(ctx.call.actor, req.id, req.token_id, ctx.trx);
  }

  @RpcMethod(deviceRpc.authenticate)
  authenticate(@Payload() req: { token: string }) {
    return this.devices.authenticate(req.token);
  }
}
