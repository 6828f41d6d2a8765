/**
 * What a blob store throws. Each error has a stable `code`; a caller tells "the object is missing"
 * (`not_found`) from "the store is failing" (`storage_failed`: S3 5xx, refused connection, timeout,
 * EIO, a full disk…) by the code alone, so an HTTP layer maps the first to 404 and the second to 502.
 * Errors of the caller's own source stream (a client that went away mid-part) are not wrapped: they
 * reach the caller unchanged.
 */
export type BlobErrorCode =
  | 'invalid_key'
  | 'not_found'
  | 'size_mismatch'
  | 'checksum_mismatch'
  | 'multipart_not_found'
  | 'multipart_busy'
  | 'invalid_part'
  | 'range_not_satisfiable'
  | 'storage_failed';

export abstract class BlobError extends Error {
  abstract readonly code: BlobErrorCode;
}

export class InvalidBlobKeyError extends BlobError {
  override readonly name = 'InvalidBlobKeyError';
  readonly code = 'invalid_key';
  constructor(
    readonly key: string,
    reason = 'keys are /-separated segments of [A-Za-z0-9._-], at most 1024 characters',
  ) {
    super(`invalid blob key ${JSON.stringify(key)}: ${reason}`);
  }
}

export class BlobNotFoundError extends BlobError {
  override readonly name = 'BlobNotFoundError';
  readonly code = 'not_found';
  constructor(
    readonly key: string,
    options?: ErrorOptions,
  ) {
    super(`no blob at ${key}`, options);
  }
}

/** The bytes that arrived do not match the declared size; nothing of them is kept as a usable part or object. */
export class BlobSizeMismatchError extends BlobError {
  override readonly name = 'BlobSizeMismatchError';
  readonly code = 'size_mismatch';
  constructor(
    readonly expected: number,
    /** Bytes received; when `tooLarge`, the count at which the write was stopped. */
    readonly received: number,
    readonly tooLarge: boolean,
  ) {
    super(
      tooLarge
        ? `expected ${expected} bytes but more arrived (stopped at ${received})`
        : `expected ${expected} bytes but the source ended after ${received}`,
    );
  }
}

export class BlobChecksumMismatchError extends BlobError {
  override readonly name = 'BlobChecksumMismatchError';
  readonly code = 'checksum_mismatch';
  constructor(
    readonly expected: string,
    readonly actual: string,
  ) {
    super(`expected sha256 ${expected} but the bytes hash to ${actual}`);
  }
}

/** No open multipart upload with this id for this key (never created, aborted, or completed). */
export class MultipartNotFoundError extends BlobError {
  override readonly name = 'MultipartNotFoundError';
  readonly code = 'multipart_not_found';
  constructor(
    readonly key: string,
    readonly multipartId: string,
    options?: ErrorOptions,
  ) {
    super(`no open multipart upload ${multipartId} for ${key}`, options);
  }
}

/**
 * The upload cannot be completed or written to right now: a part is still being written while it
 * is completed, or another completion is running. Nothing changed; retry later. (Local store only:
 * its completion renames the file that part writers write into, so the two must not overlap.)
 */
export class MultipartBusyError extends BlobError {
  override readonly name = 'MultipartBusyError';
  readonly code = 'multipart_busy';
  constructor(
    readonly key: string,
    readonly multipartId: string,
    readonly reason: string,
  ) {
    super(`multipart upload ${multipartId} for ${key} is busy: ${reason}`);
  }
}

/** A part number, part size or part list the store refuses (missing part, unknown etag, gap, wrong order…). */
export class InvalidBlobPartError extends BlobError {
  override readonly name = 'InvalidBlobPartError';
  readonly code = 'invalid_part';
  constructor(
    readonly reason: string,
    readonly partNumber?: number,
    options?: ErrorOptions,
  ) {
    super(partNumber === undefined ? reason : `part ${partNumber}: ${reason}`, options);
  }
}

export class BlobRangeNotSatisfiableError extends BlobError {
  override readonly name = 'BlobRangeNotSatisfiableError';
  readonly code = 'range_not_satisfiable';
  constructor(
    readonly key: string,
    readonly range: { start: number; end?: number },
    options?: ErrorOptions,
  ) {
    super(`range ${range.start}-${range.end ?? ''} of ${key} is not satisfiable`, options);
  }
}

/**
 * The store itself failed (S3 5xx or auth refused, connection refused, timeout, EIO, ENOSPC…). Worth a
 * retry later; never a statement about the object. The original error is the `cause`.
 */
export class BlobStorageError extends BlobError {
  override readonly name = 'BlobStorageError';
  readonly code = 'storage_failed';
  constructor(
    readonly operation: string,
    readonly key: string | undefined,
    options: ErrorOptions & { cause: unknown },
  ) {
    const cause = options.cause instanceof Error ? options.cause.message : String(options.cause);
    super(`blob store ${operation}${key ? ` ${key}` : ''} failed: ${cause}`, options);
  }
}

export function isBlobError(err: unknown): err is BlobError {
  return err instanceof BlobError;
}
