import type { Readable } from 'node:stream';

export interface BlobStat {
  size: number;
  modifiedAt: Date;
}

export interface BlobWriteResult {
  size: number;
  /** Hex sha256 of the bytes written, computed as they streamed in. */
  sha256: string;
}

export type BlobSource = Readable | AsyncIterable<Uint8Array>;

export interface BlobWriteOptions {
  /** Refuse (and leave nothing behind) once more than this many bytes arrive. Default: no limit. */
  maxBytes?: number;
}

/**
 * Object storage as the services need it: streaming writes with constant memory, resumable appends,
 * ranged reads. Implementations: LocalBlobStore (a directory); an S3-compatible one plugs in here.
 * Keys are `/`-separated segments of [A-Za-z0-9._-]; they are fixed by the caller and never derived.
 */
export interface BlobStore {
  /** Writes the whole object, replacing any previous one atomically (readers never see half a write). */
  put(key: string, source: BlobSource, options?: BlobWriteOptions): Promise<BlobWriteResult>;
  /**
   * Appends to a partial object. `offset` must equal its current size (0 creates it): a resumed upload
   * sends from the byte count the server reports. Returns the new size.
   */
  append(key: string, source: BlobSource, options: BlobWriteOptions & { offset: number }): Promise<{ size: number }>;
  /** Size and time, or null when there is no such object. */
  stat(key: string): Promise<BlobStat | null>;
  /** Streams the object, or the inclusive byte range [start, end]. */
  read(key: string, range?: { start: number; end?: number }): Promise<Readable>;
  /** Hex sha256 of the stored bytes, streamed (constant memory). */
  sha256(key: string): Promise<string>;
  /** Removes the object; removing a missing one is not an error. */
  delete(key: string): Promise<void>;
}

export class BlobError extends Error {
  constructor(
    readonly code: 'invalid_key' | 'not_found' | 'too_large' | 'offset_mismatch',
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export class InvalidBlobKeyError extends BlobError {
  override readonly name = 'InvalidBlobKeyError';
  constructor(key: string) {
    super('invalid_key', `invalid blob key ${JSON.stringify(key)}`);
  }
}

export class BlobNotFoundError extends BlobError {
  override readonly name = 'BlobNotFoundError';
  constructor(readonly key: string) {
    super('not_found', `no blob at ${key}`);
  }
}

export class BlobTooLargeError extends BlobError {
  override readonly name = 'BlobTooLargeError';
  constructor(readonly maxBytes: number) {
    super('too_large', `blob exceeds ${maxBytes} bytes`);
  }
}

export class BlobOffsetMismatchError extends BlobError {
  override readonly name = 'BlobOffsetMismatchError';
  constructor(
    readonly expected: number,
    readonly actual: number,
  ) {
    super('offset_mismatch', `append at offset ${expected} but the object holds ${actual} bytes`);
  }
}

const SEGMENT = /^[A-Za-z0-9._-]+$/;

export function assertValidKey(key: string): void {
  const parts = key.split('/');
  if (key.length === 0 || key.length > 1024 || parts.some((p) => !SEGMENT.test(p) || p === '.' || p === '..')) {
    throw new InvalidBlobKeyError(key);
  }
}
