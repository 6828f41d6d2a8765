import { type OpenUploadBody, type RpcRequest, type UploadListFilter, uploadRpc } from '@ferry/contracts';
import { type RpcHandlerContext, RpcMethod } from '@ferry/platform';
import { Controller } from '@nestjs/common';
import { Ctx, Payload } from '@nestjs/microservices';
import type { TransferDB } from '../database.js';
import { UploadService } from './upload.service.js';

type Call = RpcHandlerContext<TransferDB>;

@Controller()
export class UploadRpc {
  constructor(private readonly uploads: UploadService) {}

  @RpcMethod(uploadRpc.open)
  open(@Payload() req: OpenUploadBody, @Ctx() ctx: Call) {
    return this.uploads.open(ctx.call, req, ctx.trx);
  }

  @RpcMethod(uploadRpc.get)
  get(@Payload() req: RpcRequest<typeof uploadRpc.get>, @Ctx() ctx: Call) {
    return this.uploads.get(ctx.call.actor, req.id, req.part_urls);
  }

  @RpcMethod(uploadRpc.list)
  list(@Payload() req: { query: UploadListFilter }, @Ctx() ctx: Call) {
    return this.uploads.list(ctx.call.actor, req.query);
  }

  @RpcMethod(uploadRpc.authorizePart)
  authorizePart(@Payload() req: RpcRequest<typeof uploadRpc.authorizePart>, @Ctx() ctx: Call) {
    return this.uploads.authorizePart(ctx.call.actor, req);
  }

  @RpcMethod(uploadRpc.recordPart)
  recordPart(@Payload() req: RpcRequest<typeof uploadRpc.recordPart>, @Ctx() ctx: Call) {
    return this.uploads.recordPart(req, ctx.trx);
  }

  @RpcMethod(uploadRpc.dropPart)
  dropPart(@Payload() req: RpcRequest<typeof uploadRpc.dropPart>, @Ctx() ctx: Call) {
    return this.uploads.dropPart(req, ctx.trx);
  }

  @RpcMethod(uploadRpc.receipt)
  receipt(@Payload() req: RpcRequest<typeof uploadRpc.receipt>, @Ctx() ctx: Call) {
    return this.uploads.receipt(ctx.call.actor, req.id, req.receipt, ctx.trx);
  }

  @RpcMethod(uploadRpc.complete)
  complete(@Payload() req: { id: string }, @Ctx() ctx: Call) {
    return this.uploads.complete(ctx.call.actor, req.id, ctx.trx);
  }

  @RpcMethod(uploadRpc.fail)
  fail(@Payload() req: RpcRequest<typeof uploadRpc.fail>, @Ctx() ctx: Call) {
    return this.uploads.fail(ctx.call, req.id, req.reason, ctx.trx);
  }
}
