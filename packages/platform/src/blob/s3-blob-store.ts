import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import type { Logger } from '../logging/logger.js';
import {
  BlobError,
  BlobNotFoundError,
  BlobRangeNotSatisfiableError,
  BlobStorageError,
  InvalidBlobPartError,
  MultipartNotFoundError,
} from './blob-errors.js';
import {
  assertMultipartId,
  assertPartList,
  assertPartNumber,
  assertPartSize,
  assertRange,
  assertSize,
  assertValidKey,
  type BlobSource,
  type BlobStat,
  type BlobStore,
  type BlobWriteResult,
  type ByteRange,
  type CompletedPart,
  type CreateMultipartOptions,
  MAX_PART_SIZE,
  type PartReceipt,
  type PresignedPart,
  type PresignPartOptions,
  type PutOptions,
  type WritePartOptions,
} from './blob-store.js';
import { BlobMeter, readerStream, TrackedSource } from './blob-streams.js';

export interface S3BlobStoreOptions {
  /** e.g. `http://127.0.0.1:9000` for MinIO. Default: AWS's own endpoint for the region. */
  endpoint?: string;
  /**
   * Endpoint written into presigned part URLs, when devices reach the store by another address than
   * the services do (`http://minio:9000` inside compose). Default: `endpoint`. The host is signed, so
   * it must be the one the device connects to.
   */
  publicEndpoint?: string;
  /** Default `us-east-1` (what MinIO and s3rver expect unless configured otherwise). */
  region?: string;
  bucket: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  /** `bucket` in the path instead of the host name. Default true: MinIO and s3rver need it; AWS works either way. */
  forcePathStyle?: boolean;
  /** Time to establish a connection. Default 3000 ms: an unreachable store fails in seconds. */
  connectTimeoutMs?: number;
  /**
   * Time from sending a request to its response headers, for everything but streamed uploads (whose
   * duration depends on the device). Default 30 000 ms.
   */
  responseTimeoutMs?: number;
  /**
   * A transfer in either direction with no byte moving for this long fails, so a hung store cannot
   * hold a request forever. A reader that stops consuming a `read()` stream for this long loses it.
   * Default 60 000 ms.
   */
  idleTimeoutMs?: number;
  /** Attempts per request that can be replayed (not streamed uploads, which are never retried). Default 3. */
  maxAttempts?: number;
  /**
   * put() without a declared size uploads in parts of this many bytes, buffering one part in memory.
   * Default 8 MiB (S3's minimum part size is 5 MiB).
   */
  putPartSize?: number;
  /**
   * Where the SDK's own warnings go (e.g. a streamed upload that failed and cannot be retried, which
   * also reaches the caller as an error). Default: nowhere; the SDK would otherwise write to the console.
   */
  logger?: Logger;
  /** Clock for presigned URLs' signing time. Default: the system clock. Tests use it to mint expired URLs. */
  now?: () => Date;
}

const ignore = () => {};
const SILENT = { trace: ignore, debug: ignore, info: ignore, warn: ignore, error: ignore };

/** An S3 SDK error's code and status, without trusting its shape. */
function s3ErrorOf(err: unknown): { name?: string; status?: number } {
  const e = err as { name?: unknown; $metadata?: { httpStatusCode?: unknown } } | undefined;
  return {
    name: typeof e?.name === 'string' ? e.name : undefined,
    status: typeof e?.$metadata?.httpStatusCode === 'number' ? e.$metadata.httpStatusCode : undefined,
  };
}

/**
 * Blob store on S3-compatible storage (MinIO, AWS S3, s3rver in tests). Part URLs are presigned
 * UploadPart URLs, so in this mode no upload byte passes through our processes; writePart exists
 * for a proxying deployment and for tests.
 *
 * Checksums: the SDK's default flexible checksums are off (`WHEN_REQUIRED`): with them the SDK frames
 * streamed bodies with trailing checksums that S3-compatible servers such as s3rver store as part of
 * the object. Integrity comes from our own sha256 (writePart, put) and from streaming the object back
 * after completion (S3 keeps no whole-object sha256 for multipart objects).
 */
export class S3BlobStore implements BlobStore {
  readonly kind = 's3';
  private readonly bucket: string;
  /** Requests that can be replayed: bounded retries, a response deadline. */
  private readonly client: S3Client;
  /** Streamed uploads: a consumed stream cannot be replayed, so one attempt and no overall deadline. */
  private readonly streamingClient: S3Client;
  private readonly presignClient: S3Client;
  private readonly putPartSize: number;
  private readonly now: () => Date;

  constructor(options: S3BlobStoreOptions) {
    this.bucket = options.bucket;
    this.putPartSize = options.putPartSize ?? 8 * 1024 * 1024;
    assertPartSize(this.putPartSize);
    this.now = options.now ?? (() => new Date());
    const connectionTimeout = options.connectTimeoutMs ?? 3_000;
    const socketTimeout = options.idleTimeoutMs ?? 60_000;
    const base: S3ClientConfig = {
      region: options.region ?? 'us-east-1',
      endpoint: options.endpoint,
      forcePathStyle: options.forcePathStyle ?? true,
      credentials: options.credentials,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      logger: options.logger ?? SILENT,
    };
    this.client = new S3Client({
      ...base,
      maxAttempts: options.maxAttempts ?? 3,
      requestHandler: {
        connectionTimeout,
        socketTimeout,
        requestTimeout: options.responseTimeoutMs ?? 30_000,
        throwOnRequestTimeout: true,
      },
    });
    this.streamingClient = new S3Client({
      ...base,
      maxAttempts: 1,
      requestHandler: { connectionTimeout, socketTimeout },
    });
    this.presignClient =
      options.publicEndpoint && options.publicEndpoint !== options.endpoint
        ? new S3Client({ ...base, endpoint: options.publicEndpoint })
        : this.client;
  }

  /** Releases the clients' sockets. */
  destroy(): void {
    for (const client of new Set([this.client, this.streamingClient, this.presignClient])) client.destroy();
  }

  /** Our own errors pass; S3's codes that mean something to the caller are translated; the rest is the store failing. */
  private failure(operation: string, key: string, err: unknown, multipartId?: string): Error {
    if (err instanceof BlobError) return err;
    const { name } = s3ErrorOf(err);
    if (name === 'NoSuchUpload' && multipartId !== undefined) {
      return new MultipartNotFoundError(key, multipartId, { cause: err });
    }
    if (name === 'InvalidPart' || name === 'InvalidPartOrder' || name === 'EntityTooSmall') {
      return new InvalidBlobPartError(`S3 refused the part list (${name})`, undefined, { cause: err });
    }
    return new BlobStorageError(operation, key, { cause: err });
  }

  async createMultipart(key: string, options: CreateMultipartOptions): Promise<{ multipartId: string }> {
    assertValidKey(key);
    assertPartSize(options.partSize);
    try {
      const out = await this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: key }));
      if (!out.UploadId) throw new Error('CreateMultipartUpload returned no UploadId');
      return { multipartId: out.UploadId };
    } catch (err) {
      throw this.failure('createMultipart', key, err);
    }
  }

  async presignPart(
    key: string,
    multipartId: string,
    partNumber: number,
    options: PresignPartOptions,
  ): Promise<PresignedPart> {
    assertValidKey(key);
    assertMultipartId(key, multipartId);
    assertPartNumber(partNumber);
    assertSize(options.contentLength, 'contentLength');
    const { expiresInSeconds } = options;
    if (!Number.isInteger(expiresInSeconds) || expiresInSeconds < 1 || expiresInSeconds > 7 * 24 * 3600) {
      throw new RangeError(`expiresInSeconds must be an integer from 1 to 604800, got ${expiresInSeconds}`);
    }
    if (options.contentLength > MAX_PART_SIZE) {
      throw new InvalidBlobPartError(`${options.contentLength} bytes exceed S3's largest part`, partNumber);
    }
    const signingDate = this.now();
    // ContentLength becomes a signed header: S3 refuses a PUT of any other length.
    const command = new UploadPartCommand({
      Bucket: this.bucket,
      Key: key,
      UploadId: multipartId,
      PartNumber: partNumber,
      ContentLength: options.contentLength,
    });
    const url = await getSignedUrl(this.presignClient, command, { expiresIn: expiresInSeconds, signingDate });
    return {
      url,
      method: 'PUT',
      headers: { 'content-length': String(options.contentLength) },
      expiresAt: new Date(signingDate.getTime() + expiresInSeconds * 1000),
    };
  }

  /**
   * Streams `source` through a meter into one request. When the meter or the source fails, the
   * request is aborted before its last bytes leave (the meter holds them back), so S3 keeps nothing.
   */
  private async streamUpload<T>(
    operation: string,
    key: string,
    source: BlobSource,
    meter: BlobMeter,
    send: (body: Readable, abortSignal: AbortSignal) => Promise<T>,
    multipartId?: string,
  ): Promise<T> {
    const tracked = new TrackedSource(source);
    const abort = new AbortController();
    let streamFailure: { err: unknown } | undefined;
    // The SDK pipes the body into the request, which does not forward a body's error: abort instead.
    const metering = pipeline(tracked.iterable, meter).catch((err: unknown) => {
      streamFailure = { err };
      abort.abort(err);
    });
    try {
      return await send(meter, abort.signal);
    } catch (err) {
      meter.destroy();
      await metering;
      if (streamFailure) {
        if (tracked.isSourceError(streamFailure.err) || streamFailure.err instanceof BlobError) throw streamFailure.err;
      }
      throw this.failure(operation, key, err, multipartId);
    }
  }

  async writePart(
    key: string,
    multipartId: string,
    partNumber: number,
    source: BlobSource,
    options: WritePartOptions,
  ): Promise<PartReceipt> {
    assertValidKey(key);
    assertMultipartId(key, multipartId);
    assertPartNumber(partNumber);
    assertSize(options.size, 'size');
    if (options.size > MAX_PART_SIZE) {
      throw new InvalidBlobPartError(`${options.size} bytes exceed S3's largest part`, partNumber);
    }
    const meter = new BlobMeter(options);
    const out = await this.streamUpload(
      'writePart',
      key,
      source,
      meter,
      (body, abortSignal) =>
        this.streamingClient.send(
          new UploadPartCommand({
            Bucket: this.bucket,
            Key: key,
            UploadId: multipartId,
            PartNumber: partNumber,
            ContentLength: options.size,
            Body: body,
          }),
          { abortSignal },
        ),
      multipartId,
    );
    if (!out.ETag) throw new BlobStorageError('writePart', key, { cause: new Error('UploadPart returned no ETag') });
    return { partNumber, etag: out.ETag, ...meter.result() };
  }

  async completeMultipart(
    key: string,
    multipartId: string,
    parts: readonly CompletedPart[],
  ): Promise<{ size: number }> {
    assertValidKey(key);
    assertMultipartId(key, multipartId);
    assertPartList(parts);
    try {
      await this.sendComplete(key, multipartId, parts);
    } catch (err) {
      const failure = this.failure('completeMultipart', key, err, multipartId);
      if (failure instanceof InvalidBlobPartError) throw failure;
      // Completed before (S3 then answers NoSuchUpload; s3rver a 500), or completed but the answer was
      // lost: the object at the key is the truth, since keys are never reused across uploads. When
      // the store cannot answer the HEAD either, the completion's own failure is the one to report.
      const existing = await this.stat(key).catch(() => null);
      if (existing) return { size: existing.size };
      throw failure;
    }
    const done = await this.stat(key);
    if (!done) {
      throw new BlobStorageError('completeMultipart', key, { cause: new Error('object missing after completion') });
    }
    return { size: done.size };
  }

  private sendComplete(key: string, multipartId: string, parts: readonly CompletedPart[]) {
    return this.client.send(
      new CompleteMultipartUploadCommand({
        Bucket: this.bucket,
        Key: key,
        UploadId: multipartId,
        MultipartUpload: { Parts: parts.map((p) => ({ PartNumber: p.partNumber, ETag: p.etag })) },
      }),
    );
  }

  async abortMultipart(key: string, multipartId: string): Promise<void> {
    assertValidKey(key);
    try {
      assertMultipartId(key, multipartId);
    } catch {
      return; // not an id any store issued: nothing to abort
    }
    try {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: key, UploadId: multipartId }));
    } catch (err) {
      const { name, status } = s3ErrorOf(err);
      if (name === 'NoSuchUpload') return; // (a 404 NoSuchBucket is a misconfiguration, not "already gone")
      // s3rver does not implement AbortMultipartUpload (405); its staged parts stay until its directory goes.
      if (status === 405) return;
      throw this.failure('abortMultipart', key, err, multipartId);
    }
  }

  async put(key: string, source: BlobSource, options: PutOptions = {}): Promise<BlobWriteResult> {
    assertValidKey(key);
    assertSize(options.size, 'size');
    if (options.size === undefined) return this.putInParts(key, source, options.sha256);
    const meter = new BlobMeter(options);
    await this.streamUpload('put', key, source, meter, (body, abortSignal) =>
      this.streamingClient.send(
        new PutObjectCommand({ Bucket: this.bucket, Key: key, ContentLength: options.size, Body: body }),
        { abortSignal },
      ),
    );
    return meter.result();
  }

  /**
   * A put of unknown length: S3 needs each request's length up front, so the bytes go in buffered
   * parts of putPartSize (memory: one part). A small object is one PutObject; a larger one a
   * multipart upload, aborted if anything fails, so the object appears whole or not at all.
   */
  private async putInParts(key: string, source: BlobSource, sha256: string | undefined): Promise<BlobWriteResult> {
    const tracked = new TrackedSource(source);
    const meter = new BlobMeter({ sha256 });
    const metering = pipeline(tracked.iterable, meter).catch(() => undefined); // surfaces through the loop below
    let multipartId: string | undefined;
    const parts: CompletedPart[] = [];
    let buffered: Buffer[] = [];
    let bufferedSize = 0;
    const uploadBuffered = async () => {
      multipartId ??= (await this.createMultipart(key, { partSize: this.putPartSize })).multipartId;
      const body = Buffer.concat(buffered);
      buffered = [];
      bufferedSize = 0;
      const out = await this.client
        .send(
          new UploadPartCommand({
            Bucket: this.bucket,
            Key: key,
            UploadId: multipartId,
            PartNumber: parts.length + 1,
            ContentLength: body.length,
            Body: body,
          }),
        )
        .catch((err) => {
          throw this.failure('put', key, err, multipartId);
        });
      if (!out.ETag) throw new BlobStorageError('put', key, { cause: new Error('UploadPart returned no ETag') });
      parts.push({ partNumber: parts.length + 1, etag: out.ETag });
    };
    try {
      // The meter releases its last chunk only once the sha256 has matched, so the loop ends normally
      // only for bytes that passed.
      for await (const chunk of meter as AsyncIterable<Buffer>) {
        buffered.push(chunk);
        bufferedSize += chunk.length;
        if (bufferedSize >= this.putPartSize) await uploadBuffered();
      }
      if (multipartId === undefined) {
        const body = Buffer.concat(buffered);
        await this.client
          .send(new PutObjectCommand({ Bucket: this.bucket, Key: key, ContentLength: body.length, Body: body }))
          .catch((err) => {
            throw this.failure('put', key, err);
          });
      } else {
        if (bufferedSize > 0) await uploadBuffered();
        // Not completeMultipart: its "the object exists, so it was completed" fallback does not hold
        // for put, which may be replacing an older object at the same key.
        await this.sendComplete(key, multipartId, parts);
      }
    } catch (err) {
      meter.destroy();
      await metering;
      // An abort that fails too leaves parts only a bucket lifecycle rule collects; the first error matters more.
      if (multipartId !== undefined) await this.abortMultipart(key, multipartId).catch(() => undefined);
      if (tracked.isSourceError(err)) throw err;
      throw this.failure('put', key, err);
    }
    return meter.result();
  }

  async stat(key: string): Promise<BlobStat | null> {
    assertValidKey(key);
    try {
      const out = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key }));
      return { size: out.ContentLength ?? 0, modifiedAt: out.LastModified ?? new Date(0) };
    } catch (err) {
      // HEAD answers carry no body: a missing bucket also reads as 404 here (read() tells them apart).
      if (s3ErrorOf(err).status === 404) return null;
      throw this.failure('stat', key, err);
    }
  }

  async read(key: string, range?: ByteRange): Promise<Readable> {
    assertValidKey(key);
    assertRange(key, range);
    try {
      const out = await this.client.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: key,
          Range: range ? `bytes=${range.start}-${range.end ?? ''}` : undefined,
        }),
      );
      if (!(out.Body instanceof Readable)) throw new Error('GetObject returned no stream');
      return readerStream(out.Body, key);
    } catch (err) {
      const { name, status } = s3ErrorOf(err);
      if (name === 'NoSuchKey') throw new BlobNotFoundError(key, { cause: err });
      if (name === 'InvalidRange' || status === 416) {
        throw new BlobRangeNotSatisfiableError(key, range!, { cause: err });
      }
      throw this.failure('read', key, err);
    }
  }

  /** S3 has no whole-object sha256 of a multipart object: the object is streamed back once. */
  async digest(key: string): Promise<BlobWriteResult> {
    const hash = createHash('sha256');
    let size = 0;
    for await (const chunk of await this.read(key)) {
      hash.update(chunk as Buffer);
      size += (chunk as Buffer).length;
    }
    return { size, sha256: hash.digest('hex') };
  }

  async delete(key: string): Promise<void> {
    assertValidKey(key);
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key }));
    } catch (err) {
      if (s3ErrorOf(err).name === 'NoSuchKey') return;
      throw this.failure('delete', key, err);
    }
  }
}
