import { createHash } from 'node:crypto';
import { PassThrough, type Readable, Transform, type TransformCallback } from 'node:stream';
import { BlobChecksumMismatchError, BlobError, BlobSizeMismatchError, BlobStorageError } from './blob-errors.js';
import type { BlobSource, BlobWriteResult } from './blob-store.js';

export interface BlobMeterOptions {
  /** Exact expected byte count. Default: any. */
  size?: number;
  /** Expected hex sha256. Default: not checked. */
  sha256?: string;
}

/**
 * Counts and hashes bytes on their way to a store, failing the stream on the first byte past the
 * expected size, or at the end when the size or sha256 is wrong.
 *
 * It holds back the latest chunk until the end has been verified, so the store never receives a
 * complete body (Content-Length satisfied, S3 commits the part) for bytes that then fail the check:
 * a bad part is cut short and the store discards it. Memory: one chunk.
 */
export class BlobMeter extends Transform {
  private readonly hash = createHash('sha256');
  private received = 0;
  private held: Buffer | undefined;
  private digest: string | undefined;

  constructor(private readonly expected: BlobMeterOptions = {}) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.received += chunk.length;
    const { size } = this.expected;
    if (size !== undefined && this.received > size) {
      done(new BlobSizeMismatchError(size, this.received, true));
      return;
    }
    this.hash.update(chunk);
    const previous = this.held;
    this.held = chunk;
    done(null, previous);
  }

  override _flush(done: TransformCallback): void {
    const { size, sha256 } = this.expected;
    if (size !== undefined && this.received !== size) {
      done(new BlobSizeMismatchError(size, this.received, false));
      return;
    }
    this.digest = this.hash.digest('hex');
    if (sha256 !== undefined && sha256.toLowerCase() !== this.digest) {
      done(new BlobChecksumMismatchError(sha256.toLowerCase(), this.digest));
      return;
    }
    done(null, this.held);
  }

  /** Size and sha256 of what passed; only valid once the stream has ended without error. */
  result(): BlobWriteResult {
    if (this.digest === undefined) throw new Error('BlobMeter.result() called before the stream ended');
    return { size: this.received, sha256: this.digest };
  }
}

/**
 * The stream handed to a reader: bytes from the store, with any failure while streaming (a reset
 * connection, EIO) turned into a BlobStorageError, and the store's stream released when the reader
 * stops early.
 */
export function readerStream(source: Readable, key: string): Readable {
  const out = new PassThrough();
  source.once('error', (err) => {
    out.destroy(err instanceof BlobError ? err : new BlobStorageError('read', key, { cause: err }));
  });
  out.once('close', () => source.destroy());
  source.pipe(out);
  return out;
}

/**
 * Wraps a caller's source so that its own failures (a client gone mid-upload) can be told apart from
 * the store's: the former are rethrown unchanged, the latter become BlobStorageError. (Listening for
 * 'error' on the source would not do: a pipeline destroys every stream with the first error, so the
 * source would also report the store's.)
 *
 * When the store stops early (a refused size, a full disk) the source is left as it is rather than
 * destroyed, so that an HTTP handler streaming a request into the store can still answer it; the
 * rest of the source is the caller's to discard.
 */
export class TrackedSource {
  private failure: { err: unknown } | undefined;
  readonly iterable: AsyncIterable<Uint8Array>;

  constructor(source: BlobSource) {
    this.iterable = this.iterate(source);
  }

  private async *iterate(source: BlobSource): AsyncGenerator<Uint8Array> {
    const iterator = source[Symbol.asyncIterator]();
    for (;;) {
      let next: IteratorResult<Uint8Array>;
      try {
        next = await iterator.next();
      } catch (err) {
        this.failure = { err };
        throw err;
      }
      if (next.done) return;
      // Not `yield*`: returning early would call the source's return(), which destroys a Readable.
      yield next.value;
    }
  }

  isSourceError(err: unknown): boolean {
    return this.failure !== undefined && this.failure.err === err;
  }
}
