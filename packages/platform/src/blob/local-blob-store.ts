import { createHash, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';
import { type FileHandle, mkdir, open, readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  BlobError,
  BlobNotFoundError,
  BlobRangeNotSatisfiableError,
  BlobStorageError,
  InvalidBlobKeyError,
  InvalidBlobPartError,
  MultipartBusyError,
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
  /**
   * How long a completion waits for a concurrent completion of the same upload to finish before
   * answering MultipartBusyError. Default 10 000 ms (completing is a truncate, an fsync and a rename).
   */
  completionWaitMs?: number;
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

/** A part writer refreshes its lease this often… */
const LEASE_HEARTBEAT_MS = 5_000;
/** …so a lease this old belongs to a writer that died. */
const LEASE_STALE_MS = 30_000;
/** A seal this old belongs to a completion that died (completing is a truncate, an fsync and a rename). */
const SEAL_STALE_MS = 5 * 60_000;
/** digest() reads by this much into one buffer, reused: no garbage per chunk, 1 024 reads per GiB. */
const DIGEST_BUFFER_BYTES = 1024 * 1024;

/**
 * Blob store in a local directory (the default for single-host installations and tests):
 *
 *   objects/<key>                  finished objects
 *   multipart/<id>/upload.json     an open upload: its key and part size
 *   multipart/<id>/sealed.json     the same, renamed by the completion in progress
 *   multipart/<id>/data            staging file: part N is written at offset (N−1)·partSize
 *   multipart/<id>/parts/<N>.json  receipt of part N (size, sha256), written only once its bytes are fsynced
 *   multipart/<id>/writers/<uuid>  lease of a part write in progress, touched every 5 s
 *   tmp/                           put() writes here, then renames into objects/
 *
 * Why one staging file with parts at fixed offsets: partSize is known when the upload opens, so
 * completion is a truncate to the real size and a rename, never a second copy of a multi-GB file.
 *
 * Why receipts: a part write first removes the part's receipt and writes a new one only after the
 * bytes are on disk, so a cut or refused write leaves no receipt and completion refuses the part
 * until it is sent again (the re-send overwrites the region). Part state proper lives in the
 * caller's Postgres; receipts only guarantee that completion never assembles bytes not fully written.
 *
 * Why seal and leases: the renamed file is the one part writers write into, possibly from another
 * process (the gateway writes, transfer completes), so a write still running at completion would
 * land in the finished object. A writer takes a lease before it checks that the upload is open;
 * completion seals the upload (renames upload.json, atomically, so one completion wins) before it
 * looks for live leases, and backs off with MultipartBusyError when there is one. Either the
 * completion sees the writer, or the writer sees the seal.
 *
 * Concurrent writes of different bytes to one part number are a protocol violation; the whole-file
 * sha256 that transfer recomputes after completion catches them. A key cannot be both an object and
 * a "directory" of other keys here (S3 allows it): such a put fails with InvalidBlobKeyError.
 * The directory must be local to one host (leases are judged by their modification time).
 */
export class LocalBlobStore implements BlobStore {
  readonly kind = 'local';
  private readonly root: string;
  private readonly completionWaitMs: number;

  constructor(options: LocalBlobStoreOptions) {
    this.root = path.resolve(options.root);
    this.completionWaitMs = options.completionWaitMs ?? 10_000;
  }

  private objectPath(key: string): string {
    assertValidKey(key);
    return path.join(this.root, 'objects', ...key.split('/'));
  }

  private uploadDir(key: string, multipartId: string): string {
    assertValidKey(key);
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
      await mkdir(path.join(dir, 'writers'));
      await (await open(path.join(dir, 'data'), 'wx')).close();
      const manifest: UploadManifest = { key, partSize: options.partSize, createdAt: new Date().toISOString() };
      await writeDurably(path.join(dir, 'upload.json'), JSON.stringify(manifest)); // last: now it is open
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

  /** The manifest under `name`, or null when there is none; an upload of another key counts as none. */
  private async manifest(
    key: string,
    dir: string,
    name: 'upload.json' | 'sealed.json',
  ): Promise<UploadManifest | null> {
    let manifest: UploadManifest;
    try {
      manifest = JSON.parse(await readFile(path.join(dir, name), 'utf8')) as UploadManifest;
    } catch (err) {
      if (isMissing(err)) return null;
      throw err;
    }
    return manifest.key === key ? manifest : null;
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
    const dir = this.uploadDir(key, multipartId);
    const receiptFile = path.join(dir, 'parts', `${partNumber}.json`);
    const tracked = new TrackedSource(source);
    let lease: Lease | undefined;
    try {
      // The lease comes first: a completion that sealed before this point is seen just below, one
      // that seals after it sees the lease.
      lease = await Lease.take(path.join(dir, 'writers'));
      const upload = await this.manifest(key, dir, 'upload.json');
      if (!upload) {
        if (await this.manifest(key, dir, 'sealed.json')) {
          throw new MultipartBusyError(key, multipartId, 'it is being completed');
        }
        throw new MultipartNotFoundError(key, multipartId);
      }
      if (options.size > upload.partSize) {
        throw new InvalidBlobPartError(`${options.size} bytes exceed the part size ${upload.partSize}`, partNumber);
      }
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
        // A concurrent successful write of this part may have left a receipt, but our bytes may have
        // overwritten some of its region since: drop it (the part is simply sent again).
        await rm(receiptFile, { force: true });
        throw err;
      }
      const { size, sha256 } = meter.result();
      const receipt: PartReceipt = { partNumber, size, sha256, etag: sha256 };
      await writeDurably(receiptFile, JSON.stringify(receipt));
      return receipt;
    } catch (err) {
      if (tracked.isSourceError(err)) throw err;
      if (isMissing(err)) throw new MultipartNotFoundError(key, multipartId, { cause: err }); // aborted meanwhile
      throw storageFailure('writePart', key, err);
    } finally {
      await lease?.release();
    }
  }

  private async readReceipt(dir: string, partNumber: number): Promise<PartReceipt | null> {
    try {
      return JSON.parse(await readFile(path.join(dir, 'parts', `${partNumber}.json`), 'utf8')) as PartReceipt;
    } catch (err) {
      if (isMissing(err)) return null;
      throw err;
    }
  }

  /**
   * Seals the upload for this completion: renames upload.json to sealed.json, which succeeds for one
   * caller only. Returns null when the upload is not open (completed, aborted, never created).
   */
  private async seal(key: string, multipartId: string, dir: string): Promise<UploadManifest | null> {
    const open = path.join(dir, 'upload.json');
    const sealed = path.join(dir, 'sealed.json');
    const waitUntil = Date.now() + this.completionWaitMs;
    for (;;) {
      const upload = await this.manifest(key, dir, 'upload.json');
      if (upload) {
        try {
          await rename(open, sealed);
          const now = new Date();
          await utimes(sealed, now, now); // the seal's age, for takeover after a crash
          return upload;
        } catch (err) {
          if (!isMissing(err)) throw err;
          // Another completion sealed it between our read and our rename: look at its seal below.
        }
      }
      let sealedAt: number;
      try {
        sealedAt = (await stat(sealed)).mtimeMs;
      } catch (err) {
        if (isMissing(err)) return null;
        throw err;
      }
      if (!(await this.manifest(key, dir, 'sealed.json'))) return null;
      if (Date.now() - sealedAt < SEAL_STALE_MS) {
        // Another completion is running: its outcome is ours (done, or reopened for a missing part).
        if (Date.now() >= waitUntil) throw new MultipartBusyError(key, multipartId, 'another completion is running');
        await sleep(50);
        continue;
      }
      // A completion that died mid-way: reopen, then race to seal again (the rename picks one winner).
      await rename(sealed, open).catch((err) => {
        if (!isMissing(err)) throw err;
      });
    }
  }

  async completeMultipart(
    key: string,
    multipartId: string,
    parts: readonly CompletedPart[],
  ): Promise<{ size: number }> {
    assertPartList(parts);
    const dir = this.uploadDir(key, multipartId);
    const target = this.objectPath(key);
    let upload: UploadManifest | null;
    try {
      upload = await this.seal(key, multipartId, dir);
    } catch (err) {
      throw storageFailure('completeMultipart', key, err);
    }
    if (!upload) return this.alreadyCompleted(key, new MultipartNotFoundError(key, multipartId));

    let size = 0;
    try {
      if (await hasLiveLease(path.join(dir, 'writers'))) {
        throw new MultipartBusyError(key, multipartId, 'a part is still being written');
      }
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
    } catch (err) {
      // Still open for the missing part or the running writer; if reopening fails, the seal goes
      // stale and the next completion takes over.
      await rename(path.join(dir, 'sealed.json'), path.join(dir, 'upload.json')).catch(() => undefined);
      throw storageFailure('completeMultipart', key, err);
    }

    try {
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
      // A completion that died after its rename left the seal behind; the object is in place.
      if (isMissing(err)) {
        const done = await this.alreadyCompleted(key, new MultipartNotFoundError(key, multipartId, { cause: err }));
        await rm(dir, { recursive: true, force: true }).catch((rmErr) => {
          throw storageFailure('completeMultipart', key, rmErr);
        });
        return done;
      }
      throw storageFailure('completeMultipart', key, err);
    }
    return { size };
  }

  /** The upload is not open: fine if its object exists (completed before; keys are never reused). */
  private async alreadyCompleted(key: string, notFound: MultipartNotFoundError): Promise<{ size: number }> {
    const existing = await this.stat(key);
    if (!existing) throw notFound;
    return { size: existing.size };
  }

  async abortMultipart(key: string, multipartId: string): Promise<void> {
    let dir: string;
    try {
      dir = this.uploadDir(key, multipartId);
    } catch (err) {
      if (err instanceof MultipartNotFoundError) return; // not an id we would issue
      throw err;
    }
    try {
      const ours = (await this.manifest(key, dir, 'upload.json')) ?? (await this.manifest(key, dir, 'sealed.json'));
      if (ours) await rm(dir, { recursive: true, force: true });
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
    let out: WriteStream | undefined;
    try {
      await mkdir(path.dirname(temp), { recursive: true });
      out = createWriteStream(temp, { flags: 'wx', flush: true });
      await pipeline(tracked.iterable, meter, out);
      await this.makeParentDir(key, target);
      await rename(temp, target).catch((err) => {
        throw errno(err) === 'EISDIR' ? new InvalidBlobKeyError(key, 'it is a prefix of other keys here') : err;
      });
      await syncDir(path.dirname(target));
    } catch (err) {
      // A leftover temp file would only waste space; the error worth reporting is the original one. The pipeline
      // destroyed the file stream, whose open may still be under way (a size refused at the first bytes): removed
      // before that open, the file would be created after and stay for good.
      if (out && !out.closed) await once(out, 'close').catch(() => undefined);
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

  async digest(key: string): Promise<BlobWriteResult> {
    const file = this.objectPath(key);
    let handle: FileHandle;
    try {
      handle = await open(file, 'r');
    } catch (err) {
      if (isMissing(err) || errno(err) === 'EISDIR') throw new BlobNotFoundError(key, { cause: err });
      throw storageFailure('digest', key, err);
    }
    try {
      if (!(await handle.stat()).isFile()) throw new BlobNotFoundError(key);
      const hash = createHash('sha256');
      const buffer = Buffer.allocUnsafe(DIGEST_BUFFER_BYTES);
      let size = 0;
      for (;;) {
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, size);
        if (bytesRead === 0) break;
        hash.update(buffer.subarray(0, bytesRead));
        size += bytesRead;
      }
      return { size, sha256: hash.digest('hex') };
    } catch (err) {
      throw storageFailure('digest', key, err);
    } finally {
      await handle.close();
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

/** Marks a part write in progress (see LocalBlobStore: seal and leases). */
class Lease {
  private constructor(
    private readonly file: string,
    private readonly heartbeat: NodeJS.Timeout,
  ) {}

  static async take(dir: string): Promise<Lease> {
    const file = path.join(dir, randomUUID());
    await writeFile(file, '', { flag: 'wx' });
    const heartbeat = setInterval(() => {
      const now = new Date();
      // A missed touch only ages the lease; the write itself reports any real failure.
      utimes(file, now, now).catch(() => undefined);
    }, LEASE_HEARTBEAT_MS);
    heartbeat.unref();
    return new Lease(file, heartbeat);
  }

  async release(): Promise<void> {
    clearInterval(this.heartbeat);
    // A lease left behind goes stale in LEASE_STALE_MS and stops counting.
    await rm(this.file, { force: true }).catch(() => undefined);
  }
}

async function hasLiveLease(dir: string): Promise<boolean> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if (isMissing(err)) return false;
    throw err;
  }
  for (const name of names) {
    try {
      if (Date.now() - (await stat(path.join(dir, name))).mtimeMs < LEASE_STALE_MS) return true;
    } catch (err) {
      if (!isMissing(err)) throw err; // released meanwhile
    }
  }
  return false;
}
