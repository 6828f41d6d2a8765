import { randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { type FileHandle, mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  BlobError,
  BlobNotFoundError,
  BlobRangeNotSatisfiableError,
  BlobStorageError,
  InvalidBlobKeyError,
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
  type PartReceipt,
  type PresignedPart,
  type PutOptions,
  type WritePartOptions,
} from './blob-store.js';
import { BlobMeter, readerStream, TrackedSource } from './blob-streams.js';

export interface LocalBlobStoreOptions {
  /** Directory holding everything (objects/, multipart/, tmp/); created on first write. No default. */
  root: string;
}

interface UploadManifest {
  key: string;
  partSize: number;
  createdAt: string;
}

const errno = (err: unknown) => (err as NodeJS.ErrnoException | undefined)?.code;
const isMissing = (err: unknown) => errno(err) === 'ENOENT' || errno(err) === 'ENOTDIR';

/** Our own errors pass; anything else from the file system means the store is failing. */
function storageFailure(operation: string, key: string | undefined, err: unknown): Error {
  return err instanceof BlobError ? err : new BlobStorageError(operation, key, { cause: err });
}

/** ETags travel through HTTP headers and S3 XML, where they may gain quotes. */
const bareEtag = (etag: string) => etag.replace(/"/g, '');

/**
 * Blob store in a local directory (the default for single-host installations and tests):
 *
 *   objects/<key>                  finished objects
 *   multipart/<id>/upload.json     an open upload: its key and part size (its presence = the upload is open)
 *   multipart/<id>/data            staging file: part N is written at offset (N−1)·partSize
 *   multipart/<id>/parts/<N>.json  receipt of part N (size, sha256), written only once its bytes are fsynced
 *   tmp/                           put() writes here, then renames into objects/
 *
 * Why one staging file with parts at fixed offsets: partSize is known when the upload opens, so
 * completion is a truncate to the real size and a rename, never a second copy of a multi-GB file.
 * A part write first removes the part's receipt and writes a new one only after the bytes are on
 * disk; a cut or refused write leaves no receipt, so completion refuses the part until it is sent
 * again (the re-send overwrites the region). Part state proper lives in the caller's Postgres; the
 * receipts only guarantee that completion never assembles bytes that were not fully written.
 * Concurrent writes of different bytes to one part number are a protocol violation; the whole-file
 * sha256 that transfer recomputes after completion catches them.
 *
 * A key cannot be both an object and a "directory" of other keys here (S3 allows it): such a put
 * fails with InvalidBlobKeyError.
 */
export class LocalBlobStore implements BlobStore {
  readonly kind = 'local';
  private readonly root: string;

  constructor(options: LocalBlobStoreOptions) {
    this.root = path.resolve(options.root);
  }

  private objectPath(key: string): string {
    assertValidKey(key);
    return path.join(this.root, 'objects', ...key.split('/'));
  }

  private uploadDir(key: string, multipartId: string): string {
    assertMultipartId(key, multipartId);
    return path.join(this.root, 'multipart', multipartId);
  }

  async createMultipart(key: string, options: CreateMultipartOptions): Promise<{ multipartId: string }> {
    assertValidKey(key);
    assertPartSize(options.partSize);
    const multipartId = randomUUID();
    const dir = this.uploadDir(key, multipartId);
    try {
      await mkdir(path.join(dir, 'parts'), { recursive: true });
      await (await open(path.join(dir, 'data'), 'wx')).close();
      const manifest: UploadManifest = { key, partSize: options.partSize, createdAt: new Date().toISOString() };
      await writeDurably(path.join(dir, 'upload.json'), JSON.stringify(manifest));
    } catch (err) {
      throw storageFailure('createMultipart', key, err);
    }
    return { multipartId };
  }

  async presignPart(key: string, multipartId: string, partNumber: number): Promise<PresignedPart | undefined> {
    assertValidKey(key);
    assertMultipartId(key, multipartId);
    assertPartNumber(partNumber);
    return undefined;
  }

  private async openUpload(key: string, multipartId: string): Promise<UploadManifest> {
    assertValidKey(key);
    const file = path.join(this.uploadDir(key, multipartId), 'upload.json');
    let manifest: UploadManifest;
    try {
      manifest = JSON.parse(await readFile(file, 'utf8')) as UploadManifest;
    } catch (err) {
      if (isMissing(err)) throw new MultipartNotFoundError(key, multipartId, { cause: err });
      throw storageFailure('openMultipart', key, err);
    }
    if (manifest.key !== key) throw new MultipartNotFoundError(key, multipartId);
    return manifest;
  }

  async writePart(
    key: string,
    multipartId: string,
    partNumber: number,
    source: BlobSource,
    options: WritePartOptions,
  ): Promise<PartReceipt> {
    assertPartNumber(partNumber);
    assertSize(options.size, 'size');
    const upload = await this.openUpload(key, multipartId);
    if (options.size > upload.partSize) {
      throw new InvalidBlobPartError(`${options.size} bytes exceed the part size ${upload.partSize}`, partNumber);
    }
    const dir = this.uploadDir(key, multipartId);
    const receiptFile = path.join(dir, 'parts', `${partNumber}.json`);
    const tracked = new TrackedSource(source);
    const meter = new BlobMeter(options);
    try {
      // From here until the new receipt exists the region may hold anything: no receipt, no use.
      await rm(receiptFile, { force: true });
      const sink = createWriteStream(path.join(dir, 'data'), {
        flags: 'r+',
        start: (partNumber - 1) * upload.partSize,
        flush: true, // fsync before close: a receipt never claims bytes still in the page cache
      });
      await pipeline(tracked.iterable, meter, sink);
    } catch (err) {
      tracked.abandon();
      // A concurrent successful write of this part may have left a receipt, but our bytes may have
      // overwritten some of its region since: drop it (the part is simply sent again).
      await rm(receiptFile, { force: true }).catch((rmErr) => {
        throw storageFailure('writePart', key, rmErr);
      });
      if (tracked.isSourceError(err)) throw err;
      if (isMissing(err)) throw new MultipartNotFoundError(key, multipartId, { cause: err }); // aborted meanwhile
      throw storageFailure('writePart', key, err);
    }
    const { size, sha256 } = meter.result();
    const receipt: PartReceipt = { partNumber, size, sha256, etag: sha256 };
    try {
      await writeDurably(receiptFile, JSON.stringify(receipt));
    } catch (err) {
      if (isMissing(err)) throw new MultipartNotFoundError(key, multipartId, { cause: err });
      throw storageFailure('writePart', key, err);
    }
    return receipt;
  }

  private async readReceipt(dir: string, partNumber: number): Promise<PartReceipt | null> {
    try {
      return JSON.parse(await readFile(path.join(dir, 'parts', `${partNumber}.json`), 'utf8')) as PartReceipt;
    } catch (err) {
      if (isMissing(err)) return null;
      throw err;
    }
  }

  async completeMultipart(
    key: string,
    multipartId: string,
    parts: readonly CompletedPart[],
  ): Promise<{ size: number }> {
    assertPartList(parts);
    let upload: UploadManifest;
    try {
      upload = await this.openUpload(key, multipartId);
    } catch (err) {
      if (err instanceof MultipartNotFoundError) return this.alreadyCompleted(key, err);
      throw err;
    }
    const dir = this.uploadDir(key, multipartId);
    const target = this.objectPath(key);
    let size = 0;
    try {
      for (const [i, part] of parts.entries()) {
        const receipt = await this.readReceipt(dir, part.partNumber);
        if (!receipt) throw new InvalidBlobPartError('was never written, or its last write failed', part.partNumber);
        if (receipt.etag !== bareEtag(part.etag)) {
          throw new InvalidBlobPartError('etag does not match the part last written', part.partNumber);
        }
        if (i < parts.length - 1 && receipt.size !== upload.partSize) {
          throw new InvalidBlobPartError(
            `is ${receipt.size} bytes; every part but the last must be ${upload.partSize}`,
            part.partNumber,
          );
        }
        size += receipt.size;
      }
      const data = path.join(dir, 'data');
      // Cuts off the unused tail of the last part's region and any part written beyond the list.
      await withFile(data, 'r+', async (file) => {
        await file.truncate(size);
        await file.datasync();
      });
      await this.makeParentDir(key, target);
      await rename(data, target);
      await syncDir(path.dirname(target));
      await rm(dir, { recursive: true, force: true });
    } catch (err) {
      // A concurrent completion got there first: the data file is gone, the object is in place.
      if (isMissing(err))
        return this.alreadyCompleted(key, new MultipartNotFoundError(key, multipartId, { cause: err }));
      throw storageFailure('completeMultipart', key, err);
    }
    return { size };
  }

  private async alreadyCompleted(key: string, notFound: MultipartNotFoundError): Promise<{ size: number }> {
    const existing = await this.stat(key);
    if (existing) return { size: existing.size };
    throw notFound;
  }

  async abortMultipart(key: string, multipartId: string): Promise<void> {
    try {
      await this.openUpload(key, multipartId);
    } catch (err) {
      if (err instanceof MultipartNotFoundError) return;
      throw err;
    }
    try {
      await rm(this.uploadDir(key, multipartId), { recursive: true, force: true });
    } catch (err) {
      throw storageFailure('abortMultipart', key, err);
    }
  }

  async put(key: string, source: BlobSource, options: PutOptions = {}): Promise<BlobWriteResult> {
    assertSize(options.size, 'size');
    const target = this.objectPath(key);
    const temp = path.join(this.root, 'tmp', randomUUID());
    const tracked = new TrackedSource(source);
    const meter = new BlobMeter(options);
    try {
      await mkdir(path.dirname(temp), { recursive: true });
      await pipeline(tracked.iterable, meter, createWriteStream(temp, { flags: 'wx', flush: true }));
      await this.makeParentDir(key, target);
      await rename(temp, target).catch((err) => {
        throw errno(err) === 'EISDIR' ? new InvalidBlobKeyError(key, 'it is a prefix of other keys here') : err;
      });
      await syncDir(path.dirname(target));
    } catch (err) {
      tracked.abandon();
      // A leftover temp file would only waste space; the error worth reporting is the original one.
      await rm(temp, { force: true }).catch(() => undefined);
      if (tracked.isSourceError(err)) throw err;
      throw storageFailure('put', key, err);
    }
    return meter.result();
  }

  private async makeParentDir(key: string, target: string): Promise<void> {
    try {
      await mkdir(path.dirname(target), { recursive: true });
    } catch (err) {
      if (errno(err) === 'EEXIST' || errno(err) === 'ENOTDIR') {
        throw new InvalidBlobKeyError(key, 'a prefix of it is an object here');
      }
      throw err;
    }
  }

  async stat(key: string): Promise<BlobStat | null> {
    const file = this.objectPath(key);
    try {
      const s = await stat(file);
      return s.isFile() ? { size: s.size, modifiedAt: s.mtime } : null;
    } catch (err) {
      if (isMissing(err)) return null;
      throw storageFailure('stat', key, err);
    }
  }

  async read(key: string, range?: ByteRange): Promise<Readable> {
    assertRange(key, range);
    const file = this.objectPath(key);
    // Open first, then check: a delete racing with us either wins (not found) or loses (we hold the file).
    let handle: FileHandle;
    try {
      handle = await open(file, 'r');
    } catch (err) {
      if (isMissing(err) || errno(err) === 'EISDIR') throw new BlobNotFoundError(key, { cause: err });
      throw storageFailure('read', key, err);
    }
    try {
      const s = await handle.stat();
      if (!s.isFile()) throw new BlobNotFoundError(key);
      if (range && range.start >= s.size) throw new BlobRangeNotSatisfiableError(key, range);
      return readerStream(handle.createReadStream({ start: range?.start, end: range?.end }), key);
    } catch (err) {
      await handle.close();
      throw storageFailure('read', key, err);
    }
  }

  async delete(key: string): Promise<void> {
    const file = this.objectPath(key);
    try {
      if ((await this.stat(key)) === null) return;
      await rm(file, { force: true });
    } catch (err) {
      throw storageFailure('delete', key, err);
    }
  }
}

async function withFile<T>(file: string, flags: string, fn: (handle: FileHandle) => Promise<T>): Promise<T> {
  const handle = await open(file, flags);
  try {
    return await fn(handle);
  } finally {
    await handle.close();
  }
}

/** Writes a small file so that it exists either whole or not at all, and survives a crash once we return. */
async function writeDurably(file: string, content: string): Promise<void> {
  const temp = `${file}.${randomUUID()}.tmp`;
  try {
    await withFile(temp, 'wx', async (handle) => {
      await handle.writeFile(content);
      await handle.datasync();
    });
    await rename(temp, file);
  } catch (err) {
    await rm(temp, { force: true }).catch(() => undefined);
    throw err;
  }
}

/** Makes a rename into `dir` durable. Some platforms cannot fsync a directory; there it is skipped. */
async function syncDir(dir: string): Promise<void> {
  try {
    await withFile(dir, 'r', (handle) => handle.sync());
  } catch (err) {
    if (!['EISDIR', 'EPERM', 'EINVAL', 'EBADF'].includes(errno(err) ?? '')) throw err;
  }
}
