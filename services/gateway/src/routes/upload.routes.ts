import {
  FailedUpload,
  FailUploadBody,
  OpenUploadBody,
  PartParams,
  PartReceiptBody,
  PartReceived,
  PartSignatureQuery,
  Sha256,
  Upload,
  UploadGetQuery,
  UploadIdParams,
  UploadListQuery,
  UploadPage,
  uploadRpc,
} from '@ferry/contracts';
import {
  BlobChecksumMismatchError,
  BlobSizeMismatchError,
  DomainError,
  isBlobError,
  MultipartBusyError,
  MultipartNotFoundError,
} from '@ferry/platform';
import { defineRoute, ok, type RouteContext, type RouteResult } from '../http/route.js';

const READERS = ['admin', 'operator', 'viewer'] as const;
const tags = ['Uploads'];

/** Part URLs of the local store are relative to the API; the client gets them absolute. */
function absolute(upload: Upload, origin: string): Upload {
  if (!upload.parts) return upload;
  return { ...upload, parts: upload.parts.map((p) => ({ ...p, url: new URL(p.url, origin).toString() })) };
}

/** Where a part's bytes could not be stored, said in the protocol's terms. */
function partWriteError(err: unknown): DomainError {
  if (err instanceof BlobSizeMismatchError) {
    return new DomainError(
      'validation_failed',
      err.tooLarge
        ? `the part is ${err.expected} bytes; more arrived`
        : `the part is ${err.expected} bytes; the body ended after ${err.received} (send the whole part again)`,
      { errors: [{ path: 'body', message: `must be exactly ${err.expected} bytes` }] },
    );
  }
  if (err instanceof BlobChecksumMismatchError) {
    return new DomainError('validation_failed', 'the part’s bytes do not match X-Part-Sha256; nothing was kept', {
      errors: [{ path: 'header.x-part-sha256', message: `the bytes hash to ${err.actual}` }],
    });
  }
  if (err instanceof MultipartNotFoundError) {
    return new DomainError('invalid_state', 'this upload no longer takes parts (completed, failed or expired)');
  }
  if (err instanceof MultipartBusyError) {
    // The PUT raced the completion (the local store sealed the upload between transfer's check and the
    // write): a state conflict, not a store failure; nothing was written.
    return new DomainError('invalid_state', 'the upload is being completed');
  }
  if (isBlobError(err)) {
    // A store failure, or anything else the store refused (a key, a part…): the store's own
    // message names object keys, multipart ids and paths, so it goes to the log (the cause), not the client.
    return new DomainError('storage_error', 'the object store failed to store the part; send it again later', {
      retry_after_seconds: 5,
    });
  }
  // The client's own stream failed (a cut connection): nothing usable was stored.
  return new DomainError('validation_failed', 'the part’s body was cut off; send the whole part again', {
    errors: [{ path: 'body', message: 'incomplete' }],
  });
}

/**
 * After a failed write the store holds no usable part (a part sent again overwrote the earlier bytes),
 * so transfer forgets any record of it, before the client hears of the failure: the part then shows
 * missing and `complete` never counts it. Best effort: when this fails too, the client still gets the
 * storage problem, and the record left behind makes verification reject the upload (`missing_part`).
 */
async function forgetPart(params: { id: string; file: 'mcap' | 'sidecar'; n: number }, ctx: RouteContext) {
  const part = { upload_id: params.id, file: params.file, part_number: params.n };
  try {
    await ctx.rpc.call(uploadRpc.dropPart, part, ctx.call);
  } catch (err) {
    ctx.log.error({ err, ...part }, 'could not drop the record of a part whose write failed');
  }
}

async function putPart(
  params: { id: string; file: 'mcap' | 'sidecar'; n: number },
  query: { expires: number; signature: string },
  ctx: RouteContext,
): Promise<RouteResult | Response> {
  const { request, rpc, call, blobStore } = ctx;
  const length = request.headers.get('content-length');
  if (length === null || !/^\d{1,15}$/.test(length)) {
    throw new DomainError('validation_failed', 'send the part with a Content-Length (no chunked encoding)', {
      errors: [{ path: 'header.content-length', message: 'required' }],
    });
  }
  const sha256 = request.headers.get('x-part-sha256') ?? undefined;
  if (sha256 !== undefined && !Sha256.safeParse(sha256).success) {
    throw new DomainError('validation_failed', 'X-Part-Sha256 must be a lowercase hex sha256', {
      errors: [{ path: 'header.x-part-sha256', message: 'must be 64 lowercase hex digits' }],
    });
  }
  // Transfer checks the signature, the upload's state, the size and (with a device token, the call's actor)
  // the owner.
  const target = await rpc.call(
    uploadRpc.authorizePart,
    {
      upload_id: params.id,
      file: params.file,
      part_number: params.n,
      expires: query.expires,
      signature: query.signature,
      content_length: Number(length),
    },
    call,
  );
  if (blobStore?.kind !== 'local') {
    throw new DomainError(
      'invalid_state',
      'this installation stores parts in the object store: use the part URLs the upload lists',
    );
  }
  let receipt: Awaited<ReturnType<typeof blobStore.writePart>>;
  try {
    receipt = await blobStore.writePart(target.object_key, target.multipart_id, params.n, ctx.bodyStream(), {
      size: target.size_bytes,
      ...(sha256 ? { sha256 } : {}),
    });
  } catch (err) {
    const problem = partWriteError(err);
    await forgetPart(params, ctx);
    // The rest of a refused body is never read: the connection cannot carry another request.
    throw new DomainError(
      problem.code,
      problem.message,
      { ...problem.details, close_connection: true },
      { cause: err },
    );
  }
  const recorded = await rpc.call(
    uploadRpc.recordPart,
    {
      upload_id: params.id,
      file: params.file,
      part_number: params.n,
      size_bytes: receipt.size,
      sha256: receipt.sha256,
      etag: receipt.etag,
    },
    call,
  );
  return { status: 200, body: recorded, headers: { ETag: `"${recorded.etag}"` } };
}

export const uploadRoutes = [
  defineRoute({
    method: 'POST',
    path: '/uploads',
    operationId: 'openUpload',
    summary: 'Open an upload for a task',
    description:
      'By the device that owns the task (its device token). Declares the files with their exact size and sha256; ' +
      'production is asked first whether the device owns the task and the task can take an upload (403/409 with the ' +
      'reason, before any byte flows). Answers the upload with each file’s object key (fixed now), the part size and ' +
      'one signed, expiring target per part. Opening the same task again returns the upload in flight (200) to the ' +
      'device that opened it; another device (a device registered again under the same device_id included) gets 409.',
    tags,
    actors: ['device'],
    roles: [],
    body: OpenUploadBody,
    idempotent: true,
    responses: {
      201: { description: 'Opened.', schema: Upload },
      200: { description: 'This device’s upload for the task was already in flight; here it is.', schema: Upload },
    },
    errors: {
      403: 'The device does not own the task (`not_owner`).',
      409:
        'The task cannot take an upload (`invalid_state`), another upload with other files is open for it ' +
        '(`invalid_state`), or another device’s upload is in flight for it (`conflict`).',
      422: 'No such task in the device’s organization (`reference_not_found`, naming `body.task_id`).',
      502: 'The object store failed to start the upload (`storage_error`, a generic message); nothing was opened; retry later.',
    },
    async handle({ body }, { rpc, call, origin }) {
      const { created, upload } = await rpc.call(uploadRpc.open, body, call);
      return {
        status: created ? 201 : 200,
        body: absolute(upload, origin),
        headers: { Location: `/api/v1/uploads/${upload.id}` },
      };
    },
  }),
  defineRoute({
    method: 'GET',
    path: '/uploads',
    operationId: 'listUploads',
    summary: 'List uploads',
    description: 'Newest first; filters `task_id`, `device_id`, `status` (comma list), `created_from`, `created_to`.',
    tags,
    actors: ['user', 'device'],
    roles: READERS,
    query: UploadListQuery,
    responses: { 200: { description: 'A page of uploads (a device sees its own).', schema: UploadPage } },
    async handle({ query }, { rpc, call }) {
      return ok(await rpc.call(uploadRpc.list, { query }, call));
    },
  }),
  defineRoute({
    method: 'GET',
    path: '/uploads/:id',
    operationId: 'getUpload',
    summary: 'Get an upload',
    description:
      'Its status, received and missing parts per file, the verification outcome and, once production acknowledged ' +
      'it, the episode id. For the owning device while it is open: fresh targets for the missing parts ' +
      '(`part_urls=none` to leave them out), so an interrupted device re-sends only what is missing.',
    tags,
    actors: ['user', 'device'],
    roles: READERS,
    params: UploadIdParams,
    query: UploadGetQuery,
    responses: { 200: { description: 'The upload.', schema: Upload } },
    async handle({ params, query }, { rpc, call, origin }) {
      return ok(absolute(await rpc.call(uploadRpc.get, { id: params.id, part_urls: query.part_urls }, call), origin));
    },
  }),
  defineRoute({
    method: 'PUT',
    path: '/uploads/:id/parts/:file/:n',
    operationId: 'putUploadPart',
    summary: 'Send one part of an upload',
    description:
      'The target of a part URL of the local store (S3 installations hand out presigned URLs to the store instead). ' +
      'The signed query authorizes it; a device token may be sent too, and must then be the owner’s. The body is ' +
      'streamed to storage and hashed on the way, never buffered; its Content-Length must be the part’s exact size, ' +
      'and `X-Part-Sha256` (hex), when sent, is checked. Send parts in any order, in parallel, again at will: a part ' +
      'sent again replaces the earlier one. A failed PUT (a cut body, a mismatch, the store failing) leaves the part ' +
      'missing, even one received before; send it again.',
    tags,
    kind: 'stream',
    auth: 'optional',
    actors: ['device'],
    roles: [],
    params: PartParams,
    query: PartSignatureQuery,
    streamBody: { contentType: 'application/octet-stream', description: 'The part’s bytes.' },
    responses: {
      200: { description: 'Stored and recorded; the ETag header is the part’s.', schema: PartReceived },
    },
    errors: {
      403: 'The URL is tampered, expired or for another part (`forbidden`), or the device token is not the owner’s.',
      409: 'The upload no longer takes parts, or is being completed (`invalid_state`).',
      502: 'The object store failed (`storage_error`, a generic message): the part is missing; send it again later.',
    },
    handle({ params, query }, ctx) {
      return putPart(params, query, ctx);
    },
  }),
  defineRoute({
    method: 'POST',
    path: '/uploads/:id/parts',
    operationId: 'confirmUploadPart',
    summary: 'Confirm a part with its ETag',
    description:
      'After each part PUT, the device confirms it with the ETag the PUT answered. For S3 this is how transfer learns ' +
      'the part arrived; for the local store the part is already recorded and this only checks the ETag. One protocol ' +
      'for every store: always confirm.',
    tags,
    actors: ['device'],
    roles: [],
    params: UploadIdParams,
    body: PartReceiptBody,
    responses: { 200: { description: 'The upload, with the part received.', schema: Upload } },
    errors: { 409: 'The part was not received with that ETag, or the upload no longer takes parts.' },
    async handle({ params, body }, { rpc, call, origin }) {
      return ok(absolute(await rpc.call(uploadRpc.receipt, { id: params.id, receipt: body }, call), origin));
    },
  }),
  defineRoute({
    method: 'POST',
    path: '/uploads/:id/complete',
    operationId: 'completeUpload',
    summary: 'Complete an upload',
    description:
      '**202** `verifying`: verification is durable work (every part present, the whole-file sha256 recomputed from ' +
      'the stored object, the sidecar parsed), then `verified` and `transfer.evt.upload.verified.v1`, or `rejected` ' +
      'with a reason. Completing again answers the current state (200 once it is past verifying). Follow it with ' +
      '`GET /uploads/{id}` until `acknowledged` (with the episode id) or `rejected`.',
    tags,
    actors: ['device'],
    roles: [],
    params: UploadIdParams,
    idempotent: true,
    responses: {
      202: { description: 'Verification runs.', schema: Upload },
      200: { description: 'Already past verification: its current state.', schema: Upload },
    },
    async handle({ params }, { rpc, call }) {
      const upload = await rpc.call(uploadRpc.complete, params, call);
      return { status: upload.status === 'verifying' ? 202 : 200, body: upload };
    },
  }),
  defineRoute({
    method: 'POST',
    path: '/uploads/:id/fail',
    operationId: 'failUpload',
    summary: 'Report an upload failed',
    description:
      'The device gives up on the recording: the upload fails (terminal) and its staged parts are deleted, whatever ' +
      'becomes of the task. The task fails with it (`task.failed: true`) while it is recording or uploading; where ' +
      'production refuses — the task was cancelled or completed meanwhile, has not started recording, or the device ' +
      'no longer holds its workstation — the task stays as it is (`task.failed: false`, `task.detail` says why). ' +
      'Reporting an upload already failed answers it as it is (without `task`).',
    tags,
    actors: ['device'],
    roles: [],
    params: UploadIdParams,
    body: FailUploadBody,
    idempotent: true,
    responses: { 200: { description: 'The failed upload, and what became of its task.', schema: FailedUpload } },
    errors: { 409: 'The upload is already verified, acknowledged, rejected or expired (`invalid_state`).' },
    async handle({ params, body }, { rpc, call }) {
      return ok(await rpc.call(uploadRpc.fail, { id: params.id, reason: body.reason }, call));
    },
  }),
];
