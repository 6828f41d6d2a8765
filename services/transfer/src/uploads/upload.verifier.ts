import { createHash } from 'node:crypto';
import {
  MAX_SIDECAR_BYTES,
  type RecordingMetadata,
  type Upload,
  type UploadRejection,
  uploadEvents,
  uploadLifecycleEvents,
} from '@ferry/contracts';
import {
  BLOB_STORE,
  type BlobStore,
  faultPoint,
  InvalidBlobPartError,
  inTransaction,
  LOGGER,
  type Logger,
  METRICS,
  type Metrics,
  MultipartNotFoundError,
  Outbox,
} from '@ferry/platform';
import { Inject, Injectable } from '@nestjs/common';
import { Kysely, type Transaction } from 'kysely';
import type { TransferDB } from '../database.js';
import { parseSidecar, SidecarInvalid } from './sidecar.js';
import { uploadVerifiedPayload } from './upload.events.js';
import { type UploadFileRow, type UploadPartRow, UploadRepository } from './upload.repository.js';
import { partSizeOf, UploadService } from './upload.service.js';

type Trx = Transaction<TransferDB>;

class Rejected extends Error {
  constructor(readonly rejection: Omit<UploadRejection, 'by'>) {
    super(rejection.detail);
  }
}

type Verdict =
  | { status: 'verified'; recording: RecordingMetadata | null }
  | { status: 'rejected'; rejection: Omit<UploadRejection, 'by'> };

/**
 * Verification of a completed upload, run by transfer's own consumer of `upload.completed`: every
 * declared part present, the parts assembled, each file's size checked and its whole sha256 recomputed
 * by streaming the stored object, the sidecar parsed. Then `verified` with `upload.verified` (its event
 * id is the upload id: published once per upload), or `rejected` with a machine-readable reason.
 * Storage errors are thrown: the message is retried later, nothing is decided.
 *
 * The consumer runs it outside any transaction (`transaction: 'handler'`): a multi-GB hash must not hold
 * a connection, a transaction and the upload's row lock for minutes. Once every byte is checked, one
 * short transaction records the verdict by compare-and-set `verifying → verified | rejected` together
 * with its event. A redelivery, or another replica verifying the same upload at the same time, finds the
 * upload decided (or loses the compare-and-set) and does nothing; so does a verification that the
 * device's `fail` overtook.
 */
@Injectable()
export class UploadVerifier {
  private readonly verified;
  private readonly rejected;
  private readonly bytesHashed;

  constructor(
    private readonly db: Kysely<TransferDB>,
    private readonly uploads: UploadRepository,
    private readonly service: UploadService,
    private readonly outbox: Outbox,
    @Inject(BLOB_STORE) private readonly blob: BlobStore,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(METRICS) metrics: Metrics,
  ) {
    this.verified = metrics.counter('ferry_uploads_verified_total', 'Uploads verified (every byte checked).');
    this.rejected = metrics.counter('ferry_uploads_rejected_total', 'Uploads refused, by reason.', ['reason']);
    this.bytesHashed = metrics.counter(
      'ferry_upload_bytes_verified_total',
      'Bytes re-read and hashed by verification.',
    );
  }

  async verify(uploadId: string): Promise<void> {
    const row = await this.uploads.find(this.db, uploadId);
    if (row?.status !== 'verifying') return; // already decided (a redelivery)
    // Read once: nothing adds or drops parts of an upload that is no longer open.
    const files = await this.uploads.filesOf(this.db, [row.id]);
    const parts = await this.uploads.partsOf(this.db, [row.id]);
    let verdict: Verdict;
    try {
      let recording: RecordingMetadata | null = null;
      for (const file of files) {
        await this.assemble(Number(row.part_size), file, parts);
        const data = await this.check(file);
        if (file.role === 'sidecar') {
          try {
            recording = parseSidecar(data!);
          } catch (err) {
            if (err instanceof SidecarInvalid) throw new Rejected({ reason: 'sidecar_invalid', detail: err.message });
            throw err;
          }
        }
      }
      verdict = { status: 'verified', recording };
    } catch (err) {
      if (!(err instanceof Rejected)) throw err;
      verdict = { status: 'rejected', rejection: err.rejection };
      // Staged parts and any object assembled from them go before the verdict, so a failure here is retried
      // with nothing decided (discarding is idempotent).
      await this.service.discardFiles(this.db, row.id);
    }
    faultPoint('transfer.after_verify');
    const decided = await inTransaction(this.db, (trx) =>
      verdict.status === 'verified'
        ? this.recordVerified(trx, row.id, verdict.recording)
        : this.recordRejected(trx, row.id, verdict.rejection),
    );
    if (!decided) {
      this.logger.debug({ upload_id: row.id }, 'upload decided meanwhile; verdict dropped');
      return;
    }
    if (verdict.status === 'verified') {
      this.verified.inc();
      this.logger.info({ upload_id: row.id, task_id: row.task_id }, 'upload verified');
    } else {
      const { reason, detail } = verdict.rejection;
      this.rejected.inc({ reason });
      this.logger.warn({ upload_id: row.id, reason, detail }, 'upload rejected');
    }
  }

  /** verifying → verified with `upload.verified`; false when the upload was decided meanwhile. */
  private async recordVerified(trx: Trx, id: string, recording: RecordingMetadata | null): Promise<boolean> {
    const moved = await this.uploads.transition(trx, id, ['verifying'], {
      status: 'verified',
      verified_at: new Date(),
      recording: recording ? JSON.stringify(recording) : null,
    });
    if (!moved) return false;
    const upload = await this.service.view(trx, moved);
    // The dedup key: one upload.verified per upload, whatever retries or republishes happen.
    await this.outbox.append(trx, uploadEvents.verified, uploadVerifiedPayload(upload), {
      aggregateId: upload.id,
      eventId: upload.id,
    });
    return true;
  }

  /** verifying → rejected with `upload.rejected`; false when the upload was decided meanwhile. */
  private async recordRejected(trx: Trx, id: string, rejection: Omit<UploadRejection, 'by'>): Promise<boolean> {
    const moved = await this.uploads.transition(trx, id, ['verifying'], {
      status: 'rejected',
      rejection_reason: rejection.reason,
      rejection_detail: rejection.detail,
      rejected_by: 'transfer',
    });
    if (!moved) return false;
    const upload: Upload = await this.service.view(trx, moved);
    await this.outbox.append(trx, uploadLifecycleEvents.rejected, { upload }, { aggregateId: id });
    return true;
  }

  /** Every part 1..N present with its size, then the object assembled (idempotent once assembled). */
  private async assemble(partSize: number, file: UploadFileRow, allParts: readonly UploadPartRow[]): Promise<void> {
    const size = Number(file.size_bytes);
    const parts = allParts.filter((p) => p.role === file.role);
    const missing: number[] = [];
    for (let n = 1; n <= file.part_count; n++) {
      const part = parts.find((p) => p.part_number === n);
      if (!part) missing.push(n);
      else if (Number(part.size_bytes) !== partSizeOf(size, partSize, n)) {
        throw new Rejected({
          reason: 'size_mismatch',
          detail: `${file.role} part ${n} holds ${part.size_bytes} bytes, not ${partSizeOf(size, partSize, n)}`,
        });
      }
    }
    if (missing.length > 0) {
      throw new Rejected({
        reason: 'missing_part',
        detail: `${file.role} is missing part(s) ${missing.slice(0, 20).join(', ')}${missing.length > 20 ? ', …' : ''} of ${file.part_count}`,
      });
    }
    try {
      await this.blob.completeMultipart(
        file.object_key,
        file.multipart_id,
        parts.sort((a, b) => a.part_number - b.part_number).map((p) => ({ partNumber: p.part_number, etag: p.etag })),
      );
    } catch (err) {
      if (err instanceof InvalidBlobPartError) {
        throw new Rejected({
          reason: 'missing_part',
          detail: `${file.role}: the store refused the parts: ${err.message}`,
        });
      }
      // Already completed by an attempt that died before recording its verdict: the object is there.
      if (err instanceof MultipartNotFoundError && (await this.blob.stat(file.object_key))) return;
      if (err instanceof MultipartNotFoundError) {
        throw new Rejected({ reason: 'missing_part', detail: `${file.role}: its parts are gone from the store` });
      }
      throw err;
    }
  }

  /** Size and whole-file sha256 of the stored object, streamed; the sidecar's bytes are returned. */
  private async check(file: UploadFileRow): Promise<Buffer | undefined> {
    const expectedSize = Number(file.size_bytes);
    const stat = await this.blob.stat(file.object_key);
    if (!stat) throw new Rejected({ reason: 'missing_part', detail: `${file.role}: no object at ${file.object_key}` });
    if (stat.size !== expectedSize) {
      throw new Rejected({
        reason: 'size_mismatch',
        detail: `${file.role} holds ${stat.size} bytes; ${expectedSize} were declared`,
      });
    }
    if (file.role === 'sidecar' && stat.size > MAX_SIDECAR_BYTES) {
      throw new Rejected({
        reason: 'sidecar_too_large',
        detail: `the sidecar holds ${stat.size} bytes; at most ${MAX_SIDECAR_BYTES}`,
      });
    }
    // The sidecar (≤ 4 MiB) is kept for parsing; the recording is only hashed, the store's cheapest way.
    let actual: string;
    let data: Buffer | undefined;
    if (file.role === 'sidecar') {
      const hash = createHash('sha256');
      const keep: Buffer[] = [];
      for await (const chunk of await this.blob.read(file.object_key)) {
        hash.update(chunk as Buffer);
        keep.push(chunk as Buffer);
      }
      actual = hash.digest('hex');
      data = Buffer.concat(keep);
    } else {
      actual = (await this.blob.digest(file.object_key)).sha256;
    }
    this.bytesHashed.inc(stat.size);
    if (actual !== file.sha256) {
      throw new Rejected({
        reason: 'sha256_mismatch',
        detail: `${file.role} hashes to ${actual}; ${file.sha256} was declared`,
      });
    }
    return data;
  }
}
