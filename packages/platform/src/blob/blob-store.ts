import type { Readable } from 'node:stream';
import {
  BlobRangeNotSatisfiableError,
  InvalidBlobKeyError,
  InvalidBlobPartError,
  MultipartNotFoundError,
} from './blob-errors.js';

/** Bytes to store: a Node stream or any async iterable of byte chunks. Consumed once. */
export type BlobSource = Readable | AsyncIterable<Uint8Array>;

export interface BlobStat {
  size: number;
  modifiedAt: Date;
}

export interface BlobWriteResult {
  size: number;
  /** Hex sha256 of the bytes written (computed as they streamed in) or, from digest(), of the stored bytes. */
  sha256: string;
}

export interface PartReceipt extends BlobWriteResult {
  partNumber: number;
  /** Opaque; pass it back to completeMultipart. */
  etag: string;
}

export interface CompletedPart {
  partNumber: number;
  etag: string;
}

export interface CreateMultipartOptions {
  /**
   * Size of every part but the last, in bytes, between MIN_PART_SIZE and MAX_PART_SIZE (S3's limits,
   * enforced by both stores so that what works locally works on S3). No default: the caller fixes it
   * when it opens the upload and hands it to the device.
   */
  partSize: number;
}

export interface PresignPartOptions {
  /** Lifetime of the URL, 1 s to 7 days (S3's limit). */
  expiresInSeconds: number;
  /** The part's exact size; it is signed, so S3 refuses a PUT of any other length. */
  contentLength: number;
}

export interface PresignedPart {
  url: string;
  method: 'PUT';
  /** Headers the PUT must carry exactly as given (they are part of the signature). */
  headers: Record<string, string>;
  expiresAt: Date;
}

export interface WritePartOptions {
  /** Exact byte count of the part; more or fewer bytes fail with BlobSizeMismatchError. */
  size: number;
  /** Expected hex sha256 of the part; a mismatch fails with BlobChecksumMismatchError. Default: not checked. */
  sha256?: string;
}

export interface PutOptions {
  /** Exact byte count; a mismatch fails with BlobSizeMismatchError. Default: whatever the source holds. */
  size?: number;
  /** Expected hex sha256; a mismatch fails with BlobChecksumMismatchError. Default: not checked. */
  sha256?: string;
}

/** Inclusive byte range; `end` past the last byte is clamped, `end` omitted means to the end. */
export interface ByteRange {
  start: number;
  end?: number;
}

/** S3's multipart limits, enforced by every store. */
export const MIN_PART_SIZE = 5 * 1024 * 1024;
export const MAX_PART_SIZE = 5 * 1024 * 1024 * 1024;
export const MAX_PARTS = 10_000;

/**
 * Object storage shaped like S3 multipart, so a device speaks one upload protocol whatever the store
 * (DESIGN §6). Implementations: LocalBlobStore (a directory; part URLs lead to our own endpoint, which
 * streams into writePart) and S3BlobStore (part URLs are presigned UploadPart URLs to the store).
 *
 * Keys are `/`-separated segments of [A-Za-z0-9._-], fixed by the caller and never derived.
 * Every failure of the store itself is a BlobStorageError; see blob-errors.ts for the others.
 */
export interface BlobStore {
  readonly kind: 'local' | 's3';

  /** Opens a multipart upload for `key`. The object appears at `key` only when it is completed. */
  createMultipart(key: string, options: CreateMultipartOptions): Promise<{ multipartId: string }>;

  /**
   * S3: a presigned UploadPart URL straight to the store. Local: undefined (the caller issues its own
   * signed URL to an endpoint that streams the body into writePart).
   */
  presignPart(
    key: string,
    multipartId: string,
    partNumber: number,
    options: PresignPartOptions,
  ): Promise<PresignedPart | undefined>;

  /**
   * Stores one part, streaming, in constant memory: hashed on the way in, exactly `options.size`
   * bytes or a BlobSizeMismatchError. A failed write (wrong size, wrong sha256, a source that errors
   * mid-way) leaves no usable part; writing a part again replaces it. Parts may arrive in any order,
   * in parallel, repeated. A source's own error is rethrown as it is; when the store refuses the
   * bytes it stops reading and leaves the source undestroyed, so an HTTP handler streaming a request
   * into it can still answer (discarding the rest is the caller's choice). The local store refuses a part
   * larger than partSize up front; S3 does not know partSize and only refuses, at completion, a part
   * other than the last under 5 MiB.
   */
  writePart(
    key: string,
    multipartId: string,
    partNumber: number,
    source: BlobSource,
    options: WritePartOptions,
  ): Promise<PartReceipt>;

  /**
   * Assembles parts 1..N, given in that order, into the object at `key` and closes the upload. Every
   * part but the last must be exactly partSize bytes. A refused part list (InvalidBlobPartError)
   * leaves the upload open. Idempotent: when the upload is no longer open and the object exists at
   * `key` (keys are never reused across uploads), returns its size. The local store answers
   * MultipartBusyError (retry later) while a part write to the upload is still running.
   */
  completeMultipart(key: string, multipartId: string, parts: readonly CompletedPart[]): Promise<{ size: number }>;

  /** Drops an open upload and its parts. Idempotent: an unknown or finished upload is not an error. */
  abortMultipart(key: string, multipartId: string): Promise<void>;

  /** Writes a whole object, replacing any previous one atomically (readers never see half a write). */
  put(key: string, source: BlobSource, options?: PutOptions): Promise<BlobWriteResult>;

  /** Size and time, or null when there is no such object. */
  stat(key: string): Promise<BlobStat | null>;

  /**
   * Streams the object, or the inclusive byte range. BlobNotFoundError when it is missing,
   * BlobRangeNotSatisfiableError when `start` is at or past the end. A failure while streaming
   * surfaces as a BlobStorageError on the stream.
   */
  read(key: string, range?: ByteRange): Promise<Readable>;

  /**
   * Size and hex sha256 of the whole object, read once (what verification needs of a multi-GB file).
   * BlobNotFoundError when it is missing. Prefer it to hashing read(): the local store reads into one
   * reused buffer, where a stream allocates one per chunk, garbage that in a service's heap cost as much
   * as the hashing itself (bench/upload-ingest).
   */
  digest(key: string): Promise<BlobWriteResult>;

  /** Removes the object; removing a missing one is not an error. */
  delete(key: string): Promise<void>;
}

const SEGMENT = /^[A-Za-z0-9._-]+$/;

/** Refuses keys that could escape a directory or mean different things to different stores. */
export function assertValidKey(key: string): void {
  const parts = key.split('/');
  if (key.length === 0 || key.length > 1024 || parts.some((p) => !SEGMENT.test(p) || p === '.' || p === '..')) {
    throw new InvalidBlobKeyError(key);
  }
}

export function assertPartSize(partSize: number): void {
  if (!Number.isSafeInteger(partSize) || partSize < MIN_PART_SIZE || partSize > MAX_PART_SIZE) {
    throw new InvalidBlobPartError(`partSize must be an integer from ${MIN_PART_SIZE} to ${MAX_PART_SIZE}`);
  }
}

export function assertPartNumber(partNumber: number): void {
  if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > MAX_PARTS) {
    throw new InvalidBlobPartError(`part numbers run from 1 to ${MAX_PARTS}`, partNumber);
  }
}

/** Multipart ids travel in URLs and name staging directories: opaque, but never anything path-like. */
export function assertMultipartId(key: string, multipartId: string): void {
  if (!/^[A-Za-z0-9._~-]{1,1024}$/.test(multipartId) || multipartId === '.' || multipartId === '..') {
    throw new MultipartNotFoundError(key, multipartId);
  }
}

/** Completion takes parts 1..N in order: the local store lays parts at fixed offsets, so gaps mean a hole. */
export function assertPartList(parts: readonly CompletedPart[]): void {
  if (parts.length === 0) throw new InvalidBlobPartError('an upload needs at least one part');
  if (parts.length > MAX_PARTS) throw new InvalidBlobPartError(`an upload has at most ${MAX_PARTS} parts`);
  parts.forEach((part, i) => {
    if (part.partNumber !== i + 1) {
      throw new InvalidBlobPartError(`parts must be numbered 1..${parts.length} in order`, part.partNumber);
    }
    if (typeof part.etag !== 'string' || part.etag.length === 0) {
      throw new InvalidBlobPartError('missing etag', part.partNumber);
    }
  });
}

export function assertRange(key: string, range: ByteRange | undefined): void {
  if (!range) return;
  const { start, end } = range;
  if (!Number.isSafeInteger(start) || start < 0 || (end !== undefined && (!Number.isSafeInteger(end) || end < start))) {
    throw new BlobRangeNotSatisfiableError(key, range);
  }
}

/** A size that is not a byte count is a programming error, not a refused upload. */
export function assertSize(size: number | undefined, what: string): void {
  if (size !== undefined && (!Number.isSafeInteger(size) || size < 0)) {
    throw new RangeError(`${what} must be a non-negative integer, got ${size}`);
  }
}
