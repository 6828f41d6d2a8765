import {
  type Actor,
  type ErrorCode,
  type FailedUpload,
  type FailedUploadTask,
  type OpenUploadBody,
  type Page,
  type PartReceiptBody,
  type PartTarget,
  type RpcCallContext,
  TaskStatus,
  taskRpc,
  type Upload,
  type UploadFileRole,
  type UploadListFilter,
  uploadLifecycleEvents,
} from '@ferry/contracts';
import {
  BLOB_STORE,
  type BlobStore,
  CONFIG,
  DomainError,
  decodeCursor,
  faultPoint,
  isIdCursor,
  newId,
  notFound,
  Outbox,
  RPC_CLIENT,
  type RpcClient,
  toPage,
} from '@ferry/platform';
import { Inject, Injectable } from '@nestjs/common';
import { Kysely, type Transaction } from 'kysely';
import type { TransferDB } from '../database.js';
import type { DeviceRow } from '../devices/device.repository.js';
import { DeviceService } from '../devices/device.service.js';
import type { TransferConfig } from '../manifest.js';
import { PartUrlSigner } from './part-urls.js';
import { type UploadFileRow, type UploadPartRow, UploadRepository, type UploadRow } from './upload.repository.js';

type Trx = Transaction<TransferDB>;

/** Bytes of part `n` (1-based) of a file of `size` bytes cut in parts of `partSize`. */
export function partSizeOf(size: number, partSize: number, n: number): number {
  const count = Math.ceil(size / partSize);
  return n < count ? partSize : size - (count - 1) * partSize;
}

/**
 * Production's answers to "fail the task" that settle it: the task is not this device's to fail (any more).
 * Any other error (unavailable, a timeout, a concurrent change) is retried by the device.
 */
const TASK_REFUSALS: ReadonlySet<ErrorCode> = new Set(['invalid_state', 'not_found', 'not_owner']);

const EXTENSION: Record<UploadFileRole, string> = { mcap: 'mcap', sidecar: 'json' };

/**
 * Uploads, shaped like S3 multipart whatever the store (DESIGN §6): open (production asked first),
 * parts (to our endpoint or straight to S3), receipts, completion (durable verification follows),
 * failure. The device is the token's; another device's upload is 404, never shown.
 */
@Injectable()
export class UploadService {
  private readonly signer: PartUrlSigner;

  constructor(
    private readonly db: Kysely<TransferDB>,
    private readonly uploads: UploadRepository,
    private readonly devices: DeviceService,
    private readonly outbox: Outbox,
    @Inject(BLOB_STORE) private readonly blob: BlobStore,
    @Inject(RPC_CLIENT) private readonly rpc: RpcClient,
    @Inject(CONFIG) private readonly config: TransferConfig,
  ) {
    this.signer = new PartUrlSigner(config.UPLOAD_SIGNING_SECRET);
  }

  // ------------------------------------------------------------------------------------- reading

  /** The upload as clients see it; part targets for the missing parts when `targets` (owning device, open). */
  async view(db: Kysely<TransferDB>, row: UploadRow, targets = false): Promise<Upload> {
    const [files, parts] = await Promise.all([this.uploads.filesOf(db, [row.id]), this.uploads.partsOf(db, [row.id])]);
    return this.toUpload(
      row,
      files,
      parts,
      targets && row.status === 'open' ? await this.targets(row, files, parts) : undefined,
    );
  }

  private toUpload(row: UploadRow, files: UploadFileRow[], parts: UploadPartRow[], targets?: PartTarget[]): Upload {
    return {
      id: row.id,
      organization_id: row.organization_id,
      task_id: row.task_id,
      device_id: row.device_id,
      status: row.status,
      part_size: Number(row.part_size),
      files: files
        .filter((f) => f.upload_id === row.id)
        .map((f) => {
          const received = parts.filter((p) => p.upload_id === row.id && p.role === f.role).map((p) => p.part_number);
          const all = Array.from({ length: f.part_count }, (_, i) => i + 1);
          return {
            role: f.role,
            object_key: f.object_key,
            size_bytes: Number(f.size_bytes),
            sha256: f.sha256,
            part_count: f.part_count,
            received_parts: received,
            missing_parts: all.filter((n) => !received.includes(n)),
          };
        }),
      ...(targets ? { parts: targets } : {}),
      recording: (row.recording as Upload['recording']) ?? null,
      rejection: row.rejection_reason
        ? {
            reason: row.rejection_reason as NonNullable<Upload['rejection']>['reason'],
            detail: row.rejection_detail ?? '',
            by: row.rejected_by ?? 'transfer',
          }
        : null,
      episode_id: row.episode_id,
      created_at: row.created_at.toISOString(),
      updated_at: row.updated_at.toISOString(),
      completed_at: row.completed_at?.toISOString() ?? null,
      verified_at: row.verified_at?.toISOString() ?? null,
      acknowledged_at: row.acknowledged_at?.toISOString() ?? null,
    };
  }

  /** Fresh, signed targets for every part not received yet. */
  private async targets(row: UploadRow, files: UploadFileRow[], parts: UploadPartRow[]): Promise<PartTarget[]> {
    const expiresAt = new Date(Date.now() + this.config.UPLOAD_URL_TTL_SECONDS * 1000);
    const out: PartTarget[] = [];
    for (const f of files) {
      for (let n = 1; n <= f.part_count; n++) {
        if (parts.some((p) => p.role === f.role && p.part_number === n)) continue;
        const size = partSizeOf(Number(f.size_bytes), Number(row.part_size), n);
        const presigned = await this.blob.presignPart(f.object_key, f.multipart_id, n, {
          expiresInSeconds: this.config.UPLOAD_URL_TTL_SECONDS,
          contentLength: size,
        });
        out.push({
          file: f.role,
          part_number: n,
          size_bytes: size,
          method: 'PUT',
          url: presigned?.url ?? this.signer.url({ uploadId: row.id, file: f.role, partNumber: n }, expiresAt),
          headers: presigned?.headers ?? {},
          expires_at: (presigned?.expiresAt ?? expiresAt).toISOString(),
        });
      }
    }
    return out;
  }

  /**
   * An upload the actor may see: its organization's; a device only its own (another's is 404). "Own"
   * is the device record, not its name: a device deleted and registered again under the same device_id
   * neither sees nor acts on the first one's uploads.
   */
  private async visible(db: Kysely<TransferDB>, actor: Actor, id: string, lock = false): Promise<UploadRow> {
    const row = await this.uploads.find(db, id, { org: actor.org, lock });
    if (!row) throw notFound('Upload', id);
    if (actor.kind === 'device' && row.device_ref !== (await this.devices.forActor(actor, db)).id) {
      throw notFound('Upload', id);
    }
    return row;
  }

  private async owned(trx: Trx, actor: Actor, id: string): Promise<UploadRow> {
    if (actor.kind !== 'device') {
      throw new DomainError('forbidden', 'only the uploading device may do this (use its device token)');
    }
    return this.visible(trx, actor, id, true);
  }

  async get(actor: Actor, id: string, partUrls?: 'missing' | 'none'): Promise<Upload> {
    const row = await this.visible(this.db, actor, id);
    const targets = actor.kind === 'device' && (partUrls ?? 'missing') === 'missing';
    return this.view(this.db, row, targets);
  }

  async list(actor: Actor, filter: UploadListFilter): Promise<Page<Upload>> {
    const after = filter.cursor ? decodeCursor(filter.cursor, isIdCursor).id : undefined;
    const deviceRef = actor.kind === 'device' ? (await this.devices.forActor(actor)).id : undefined;
    const rows = await this.uploads.list(this.db, actor.org, filter, after, deviceRef);
    const page = rows.slice(0, filter.limit);
    const ids = page.map((r) => r.id);
    const [files, parts] = await Promise.all([this.uploads.filesOf(this.db, ids), this.uploads.partsOf(this.db, ids)]);
    return toPage(
      rows,
      filter.limit,
      (r) => this.toUpload(r, files, parts),
      (r) => ({ id: r.id }),
    );
  }

  // ------------------------------------------------------------------------------------- opening

  /**
   * Opens an upload for a task, or returns the device's upload already in flight for it. Production
   * is asked first whether this device owns the task and the task can take an upload (403 / 409 with
   * the reason, before any byte flows). Object keys are fixed here, once, and never re-derived.
   */
  async open(call: RpcCallContext, body: OpenUploadBody, trx: Trx): Promise<{ created: boolean; upload: Upload }> {
    const { actor } = call;
    if (actor.kind !== 'device') {
      throw new DomainError('forbidden', 'uploads are opened by the recording device (use its device token)');
    }
    const device = await this.devices.forActor(actor, trx);
    const existing = await this.uploads.liveForTask(trx, actor.org, body.task_id, { lock: true });
    if (existing) return { created: false, upload: await this.reopen(trx, device, existing, body) };

    const eligibility = await this.rpc.call(
      taskRpc.uploadEligibility,
      { id: body.task_id, device_id: device.device_id },
      call,
    );
    if (eligibility.organization_id !== actor.org) throw notFound('Task', body.task_id);

    const id = newId();
    const partSize = this.config.UPLOAD_PART_SIZE;
    const day = new Date().toISOString().slice(0, 10).replaceAll('-', '/');
    const files = [];
    for (const declared of body.files) {
      const key = `${actor.org}/${device.id}/${day}/${body.task_id}/${id}.${EXTENSION[declared.role]}`;
      const { multipartId } = await this.blob.createMultipart(key, { partSize });
      files.push({ declared, key, multipartId });
    }
    const row = await this.uploads.insertIfNoneLive(trx, {
      id,
      organization_id: actor.org,
      device_ref: device.id,
      device_id: device.device_id,
      task_id: body.task_id,
      part_size: partSize,
    });
    if (!row) {
      // Another open for this task committed first: ours is void, theirs is the upload.
      await Promise.all(files.map((f) => this.blob.abortMultipart(f.key, f.multipartId)));
      const winner = await this.uploads.liveForTask(trx, actor.org, body.task_id, { lock: true });
      if (!winner) {
        // It ended (failed, rejected) between our insert and this read: the device simply opens again.
        const detail = `the upload opened at the same time for task ${body.task_id} has ended; open again`;
        throw new DomainError('conflict', detail, { task_id: body.task_id });
      }
      return { created: false, upload: await this.reopen(trx, device, winner, body) };
    }
    await this.uploads.insertFiles(
      trx,
      files.map((f) => ({
        upload_id: id,
        role: f.declared.role,
        object_key: f.key,
        size_bytes: f.declared.size_bytes,
        sha256: f.declared.sha256,
        multipart_id: f.multipartId,
        part_count: Math.ceil(f.declared.size_bytes / partSize),
      })),
    );
    return { created: true, upload: await this.view(trx, row, true) };
  }

  /**
   * The device's own upload in flight for the task, when it declares the same files; 409 otherwise.
   * "Own" is the device record (`device_ref`), not its name: a device deleted and registered again
   * under the same device_id is another device, and does not inherit the first one's upload.
   */
  private async reopen(trx: Trx, device: DeviceRow, row: UploadRow, body: OpenUploadBody): Promise<Upload> {
    if (row.device_ref !== device.id) {
      throw new DomainError('conflict', `another device's upload is in flight for task ${row.task_id}`, {
        task_id: row.task_id,
      });
    }
    const files = await this.uploads.filesOf(trx, [row.id]);
    const same =
      files.length === body.files.length &&
      body.files.every((d) =>
        files.some((f) => f.role === d.role && Number(f.size_bytes) === d.size_bytes && f.sha256 === d.sha256),
      );
    if (!same) {
      throw new DomainError(
        'invalid_state',
        `upload ${row.id} for this task is ${row.status} with other files; complete it, or report it failed first`,
        { upload_id: row.id, current_status: row.status },
      );
    }
    return this.view(trx, row, true);
  }

  // --------------------------------------------------------------------------------------- parts

  /**
   * Checks a part PUT before its bytes flow (the gateway asks): a valid, unexpired signature for this
   * very part, an open upload, the exact Content-Length of the part, and — when the PUT carries a
   * device token (the actor is then that device) — the owning device.
   */
  async authorizePart(
    actor: Actor,
    req: {
      upload_id: string;
      file: UploadFileRole;
      part_number: number;
      expires: number;
      signature: string;
      content_length: number;
    },
  ): Promise<{ object_key: string; multipart_id: string; size_bytes: number }> {
    const ref = { uploadId: req.upload_id, file: req.file, partNumber: req.part_number };
    const verdict = this.signer.check(ref, req.expires, req.signature);
    if (verdict !== 'ok') {
      throw new DomainError(
        'forbidden',
        verdict === 'expired'
          ? 'this part URL has expired; GET the upload for fresh ones'
          : 'this part URL is not valid for this part (tampered, or issued for another one)',
      );
    }
    const row = await this.uploads.find(this.db, req.upload_id);
    if (!row) throw notFound('Upload', req.upload_id);
    if (actor.kind === 'device') {
      const device = actor.org === row.organization_id ? await this.devices.forActor(actor) : undefined;
      if (device?.id !== row.device_ref) {
        throw new DomainError('not_owner', `device ${actor.sub} does not own upload ${row.id}`, {
          upload_id: row.id,
        });
      }
    }
    if (row.status !== 'open') {
      throw new DomainError('invalid_state', `upload ${row.id} is ${row.status}; it takes no more parts`, {
        upload_id: row.id,
        current_status: row.status,
      });
    }
    const file = (await this.uploads.filesOf(this.db, [row.id])).find((f) => f.role === req.file);
    if (!file || req.part_number > file.part_count) throw notFound('Part', `${req.file}/${req.part_number}`);
    const size = partSizeOf(Number(file.size_bytes), Number(row.part_size), req.part_number);
    if (req.content_length !== size) {
      throw new DomainError('validation_failed', `part ${req.part_number} of ${req.file} is exactly ${size} bytes`, {
        errors: [{ path: 'header.content-length', message: `must be ${size}` }],
      });
    }
    return { object_key: file.object_key, multipart_id: file.multipart_id, size_bytes: size };
  }

  /** Records a part the gateway stored (a part sent again replaces the earlier one). */
  async recordPart(
    req: {
      upload_id: string;
      file: UploadFileRole;
      part_number: number;
      size_bytes: number;
      sha256: string;
      etag: string;
    },
    trx: Trx,
  ) {
    const row = await this.uploads.find(trx, req.upload_id, { lock: true });
    if (!row) throw notFound('Upload', req.upload_id);
    if (row.status !== 'open') {
      throw new DomainError('invalid_state', `upload ${row.id} is ${row.status}; the part was not recorded`, {
        upload_id: row.id,
        current_status: row.status,
      });
    }
    const part = await this.uploads.upsertPart(trx, {
      upload_id: row.id,
      role: req.file,
      part_number: req.part_number,
      size_bytes: req.size_bytes,
      sha256: req.sha256,
      etag: req.etag,
      received_at: new Date(),
    });
    await this.uploads.touch(trx, row.id);
    return {
      file: req.file,
      part_number: part.part_number,
      size_bytes: Number(part.size_bytes),
      sha256: req.sha256,
      etag: part.etag,
    };
  }

  /**
   * Forgets a part whose bytes the gateway failed to store (the store keeps no usable part after a failed
   * write, even where an earlier send had left one), so the part shows missing and is sent again, and
   * `complete` never counts it. Only while the upload is open: once completed, its parts are verification's.
   */
  async dropPart(
    req: { upload_id: string; file: UploadFileRole; part_number: number },
    trx: Trx,
  ): Promise<{ dropped: boolean }> {
    // The lock orders this after a recordPart of the same upload still in flight.
    const row = await this.uploads.find(trx, req.upload_id, { lock: true });
    if (!row) throw notFound('Upload', req.upload_id);
    if (row.status !== 'open') return { dropped: false };
    return { dropped: await this.uploads.deletePart(trx, row.id, req.file, req.part_number) };
  }

  /**
   * The device confirms a part it PUT, with the ETag the store answered. Where the bytes went straight
   * to S3 this is how transfer learns the part arrived; where they came through our endpoint the part
   * is already recorded and the ETag must match.
   */
  async receipt(actor: Actor, id: string, receipt: PartReceiptBody, trx: Trx): Promise<Upload> {
    const row = await this.owned(trx, actor, id);
    const file = (await this.uploads.filesOf(trx, [row.id])).find((f) => f.role === receipt.file);
    if (!file || receipt.part_number > file.part_count)
      throw notFound('Part', `${receipt.file}/${receipt.part_number}`);
    const recorded = await this.uploads.findPart(trx, row.id, receipt.file, receipt.part_number);
    if (this.blob.kind === 'local' || (recorded && row.status !== 'open')) {
      if (!recorded || recorded.etag !== receipt.etag) {
        throw new DomainError(
          'invalid_state',
          `part ${receipt.part_number} of ${receipt.file} was not received with that ETag; PUT it again`,
          { upload_id: row.id, file: receipt.file, part_number: receipt.part_number },
        );
      }
      return this.view(trx, row, true);
    }
    if (row.status !== 'open') {
      throw new DomainError('invalid_state', `upload ${row.id} is ${row.status}; it takes no more parts`, {
        upload_id: row.id,
        current_status: row.status,
      });
    }
    await this.uploads.upsertPart(trx, {
      upload_id: row.id,
      role: receipt.file,
      part_number: receipt.part_number,
      size_bytes: partSizeOf(Number(file.size_bytes), Number(row.part_size), receipt.part_number),
      sha256: null,
      etag: receipt.etag,
      received_at: new Date(),
    });
    await this.uploads.touch(trx, row.id);
    return this.view(trx, row, true);
  }

  // ------------------------------------------------------------------------------ outcome commands

  /**
   * open → verifying, once (a compare-and-set under the row lock, so ten concurrent completes make one
   * verification); verification is durable work, an outbox event transfer consumes itself. Completing
   * again answers the current state.
   */
  async complete(actor: Actor, id: string, trx: Trx): Promise<Upload> {
    const row = await this.owned(trx, actor, id);
    if (row.status !== 'open') return this.view(trx, row);
    const moved = (await this.uploads.transition(trx, id, ['open'], {
      status: 'verifying',
      completed_at: new Date(),
    }))!;
    const upload = await this.view(trx, moved);
    await this.outbox.append(trx, uploadLifecycleEvents.completed, { upload }, { aggregateId: id });
    return upload;
  }

  /**
   * The device gave up: the upload fails whatever production answers about the task, so a device is never
   * left holding an upload it can neither finish nor replace. Production is asked to fail the task first;
   * where it refuses (the task's outcome is decided otherwise — cancelled by an operator, completed, deleted —
   * or it has not started recording, or the device no longer holds its workstation) the task stays as it is
   * and the answer says so. Anything else (production away, a timeout) is thrown and nothing changes here:
   * the device reports again, and since failing a failed task is a no-op, a report whose first attempt failed
   * the task but died before this commit goes through.
   */
  async fail(call: RpcCallContext, id: string, reason: string, trx: Trx): Promise<FailedUpload> {
    const row = await this.owned(trx, call.actor, id);
    if (row.status === 'failed') return this.view(trx, row);
    if (row.status !== 'open' && row.status !== 'verifying') {
      throw new DomainError('invalid_state', `upload ${id} is ${row.status}; it can no longer fail`, {
        upload_id: id,
        current_status: row.status,
      });
    }
    const task = await this.failTask(call, row, reason);
    const moved = (await this.uploads.transition(trx, id, ['open', 'verifying'], {
      status: 'failed',
      failure_reason: reason,
    }))!;
    const upload = await this.view(trx, moved);
    await this.outbox.append(
      trx,
      uploadLifecycleEvents.failed,
      { upload, reason, task_failed: task.failed },
      { aggregateId: id },
    );
    await this.discardFiles(trx, id);
    return { ...upload, task };
  }

  /** Asks production to fail the upload's task; its refusal is an answer, not an error (see `fail`). */
  private async failTask(call: RpcCallContext, row: UploadRow, reason: string): Promise<FailedUploadTask> {
    try {
      const { task } = await this.rpc.call(
        taskRpc.deviceAction,
        { id: row.task_id, action: 'fail', device_id: row.device_id, reason: `upload failed: ${reason}` },
        call,
      );
      // Production has committed the failed task; this upload's change is not committed yet.
      faultPoint('transfer.after_task_failed');
      return { failed: task.status === 'failed', status: task.status };
    } catch (err) {
      if (!(err instanceof DomainError) || !TASK_REFUSALS.has(err.code)) throw err;
      const status = TaskStatus.safeParse(err.details?.current_status);
      return { failed: false, ...(status.success ? { status: status.data } : {}), detail: err.message };
    }
  }

  /**
   * Drops everything stored for an upload that will never be acknowledged (idempotent): its staged parts and
   * the object verification may already have assembled from them. Keys are never reused across uploads, so
   * nothing else lives at its object keys.
   */
  async discardFiles(db: Kysely<TransferDB>, id: string): Promise<void> {
    const files = await this.uploads.filesOf(db, [id]);
    await Promise.all(
      files.map(async (f) => {
        await this.blob.abortMultipart(f.object_key, f.multipart_id);
        await this.blob.delete(f.object_key);
      }),
    );
  }
}
