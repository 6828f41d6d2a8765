import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  assertValidKey,
  BlobNotFoundError,
  BlobOffsetMismatchError,
  type BlobSource,
  type BlobStat,
  type BlobStore,
  BlobTooLargeError,
  type BlobWriteOptions,
  type BlobWriteResult,
} from './blob-store.js';

function isNotFound(err: unknown): boolean {
  return (err as NodeJS.ErrnoException)?.code === 'ENOENT';
}

/** Counts and hashes bytes as they pass; fails the pipeline past `maxBytes`. */
function meter(maxBytes: number | undefined, alreadyStored = 0) {
  const hash = createHash('sha256');
  let size = 0;
  const transform = new Transform({
    transform(chunk: Buffer, _enc, done) {
      size += chunk.length;
      if (maxBytes !== undefined && alreadyStored + size > maxBytes) return done(new BlobTooLargeError(maxBytes));
      hash.update(chunk);
      done(null, chunk);
    },
  });
  return { transform, result: () => ({ size, sha256: hash.digest('hex') }) };
}

/**
 * Blob store in a local directory (the default for single-host installations and tests). Writes go
 * to a temporary file renamed into place; appends assume one writer per key, which the upload
 * protocol guarantees (each upload file has one open session at a time).
 */
export class LocalBlobStore implements BlobStore {
  constructor(private readonly root: string) {}

  private pathOf(key: string): string {
    assertValidKey(key);
    return path.join(this.root, ...key.split('/'));
  }

  async put(key: string, source: BlobSource, options: BlobWriteOptions = {}): Promise<BlobWriteResult> {
    const target = this.pathOf(key);
    await mkdir(path.dirname(target), { recursive: true });
    const temp = `${target}.tmp-${randomUUID()}`;
    const m = meter(options.maxBytes);
    try {
      await pipeline(source, m.transform, createWriteStream(temp, { flags: 'wx' }));
      await rename(temp, target);
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
    return m.result();
  }

  async append(
    key: string,
    source: BlobSource,
    options: BlobWriteOptions & { offset: number },
  ): Promise<{ size: number }> {
    const target = this.pathOf(key);
    await mkdir(path.dirname(target), { recursive: true });
    const current = (await this.stat(key))?.size ?? 0;
    if (current !== options.offset) throw new BlobOffsetMismatchError(options.offset, current);
    const m = meter(options.maxBytes, current);
    // On failure the bytes already written stay: the client resumes from the size stat() reports.
    // `flush` fsyncs before close, so a reported size is on disk.
    await pipeline(
      source,
      m.transform,
      createWriteStream(target, { flags: current === 0 ? 'w' : 'r+', start: current, flush: true }),
    );
    return { size: current + m.result().size };
  }

  async stat(key: string): Promise<BlobStat | null> {
    try {
      const s = await stat(this.pathOf(key));
      return { size: s.size, modifiedAt: s.mtime };
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  async read(key: string, range?: { start: number; end?: number }): Promise<Readable> {
    const file = this.pathOf(key);
    if (!(await this.stat(key))) throw new BlobNotFoundError(key);
    return createReadStream(file, range ? { start: range.start, end: range.end } : {});
  }

  async sha256(key: string): Promise<string> {
    const hash = createHash('sha256');
    await pipeline(await this.read(key), hash);
    return hash.digest('hex');
  }

  async delete(key: string): Promise<void> {
    await rm(this.pathOf(key), { force: true });
  }
}
