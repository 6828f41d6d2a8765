import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlobNotFoundError, BlobOffsetMismatchError, BlobTooLargeError, InvalidBlobKeyError } from './blob-store.js';
import { LocalBlobStore } from './local-blob-store.js';

/** A stream of `total` pseudo-random bytes in 64 KiB chunks, never held in memory at once. */
function generated(total: number, seed = 1): { stream: Readable; sha256: () => string } {
  const hash = createHash('sha256');
  let sent = 0;
  let x = seed;
  const stream = new Readable({
    read() {
      if (sent >= total) return this.push(null);
      const n = Math.min(65_536, total - sent);
      const chunk = Buffer.alloc(n);
      for (let i = 0; i < n; i++) {
        x = (x * 1103515245 + 12345) & 0x7fffffff;
        chunk[i] = x & 0xff;
      }
      sent += n;
      hash.update(chunk);
      this.push(chunk);
    },
  });
  return { stream, sha256: () => hash.digest('hex') };
}

describe('LocalBlobStore', () => {
  let root: string;
  let store: LocalBlobStore;
  beforeAll(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'ferry-blob-'));
    store = new LocalBlobStore(root);
  });
  afterAll(() => rm(root, { recursive: true, force: true }));

  // Memory use while streaming is measured in bench/, not asserted here.
  it('streams a large object in, reporting size and sha256 computed on the way', async () => {
    const total = 64 * 1024 * 1024;
    const source = generated(total);
    const result = await store.put('org/dev/up1/recording.mcap', source.stream);
    expect(result).toEqual({ size: total, sha256: source.sha256() });
    expect((await store.stat('org/dev/up1/recording.mcap'))?.size).toBe(total);
    expect(await store.sha256('org/dev/up1/recording.mcap')).toBe(result.sha256);
  });

  it('refuses an object over the size limit and leaves nothing behind', async () => {
    await expect(
      store.put('org/big.bin', Readable.from([randomBytes(1000), randomBytes(1000)]), { maxBytes: 1500 }),
    ).rejects.toBeInstanceOf(BlobTooLargeError);
    expect(await store.stat('org/big.bin')).toBeNull();
    expect((await readdir(path.join(root, 'org'))).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('resumes an interrupted upload from the size it reports', async () => {
    const key = 'org/dev/up2/recording.mcap';
    const all = randomBytes(300_000);
    expect(await store.append(key, Readable.from([all.subarray(0, 100_000)]), { offset: 0 })).toEqual({
      size: 100_000,
    });
    // A client that lost track and resends from 0 is told where the object really is.
    const err = await store.append(key, Readable.from([all]), { offset: 0 }).catch((e) => e);
    expect(err).toBeInstanceOf(BlobOffsetMismatchError);
    expect(err).toMatchObject({ expected: 0, actual: 100_000 });
    const current = (await store.stat(key))!.size;
    expect(await store.append(key, Readable.from([all.subarray(current)]), { offset: current })).toEqual({
      size: 300_000,
    });
    expect(await store.sha256(key)).toBe(createHash('sha256').update(all).digest('hex'));
  });

  it('enforces the size limit across appends', async () => {
    const key = 'org/dev/up3/x.bin';
    await store.append(key, Readable.from([randomBytes(600)]), { offset: 0, maxBytes: 1000 });
    await expect(
      store.append(key, Readable.from([randomBytes(600)]), { offset: 600, maxBytes: 1000 }),
    ).rejects.toBeInstanceOf(BlobTooLargeError);
  });

  it('reads byte ranges, reports missing objects, and deletes idempotently', async () => {
    await store.put('org/r.txt', Readable.from([Buffer.from('0123456789')]));
    expect(await text(await store.read('org/r.txt', { start: 2, end: 5 }))).toBe('2345');
    await expect(store.read('org/none.txt')).rejects.toBeInstanceOf(BlobNotFoundError);
    expect(await store.stat('org/none.txt')).toBeNull();
    await store.delete('org/r.txt');
    await store.delete('org/r.txt');
    expect(await store.stat('org/r.txt')).toBeNull();
  });

  it('rejects keys that could escape the root', async () => {
    for (const key of ['../etc/passwd', '/abs', 'a//b', 'a/../b', 'sp ace', '']) {
      await expect(store.stat(key)).rejects.toBeInstanceOf(InvalidBlobKeyError);
    }
  });
});
