import { createHash, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BlobChecksumMismatchError,
  BlobNotFoundError,
  BlobRangeNotSatisfiableError,
  BlobSizeMismatchError,
  BlobStorageError,
  InvalidBlobKeyError,
  InvalidBlobPartError,
  MultipartNotFoundError,
} from './blob-errors.js';
import { type BlobStore, MIN_PART_SIZE } from './blob-store.js';

/** What one store under test offers the contract suite. */
export interface BlobStoreContractSubject {
  store: BlobStore;
  /**
   * The store validates multipart ids and part etags and refuses to complete with a missing part.
   * Real S3, MinIO and the local store do; s3rver does not (and crashes its process when asked to
   * complete an upload with a missing part, so those cases are never sent to it).
   */
  strictMultipart: boolean;
  /** The same kind of store pointed at nothing (a closed port), to tell "store down" from "object missing". */
  unreachable?: BlobStore;
  /** How many multipart uploads have staging on disk, where the suite can see it. */
  stagedUploads?: () => Promise<number>;
  teardown?: () => Promise<void>;
}

const MiB = 1024 * 1024;

/**
 * Deterministic pseudo-random bytes where byte i depends only on (seed, i), so any slice of an object
 * can be generated on its own (parts, ranges) and nothing large is ever held in memory.
 */
export function bytesAt(seed: number, start: number, end: number): Buffer {
  const out = Buffer.allocUnsafe(end - start);
  for (let i = start; i < end; i++) {
    // A 32-bit integer hash of the position (xorshift-multiply), cheap and without period at our sizes.
    let x = (i ^ Math.imul(seed, 0x9e3779b1)) >>> 0;
    x = Math.imul(x ^ (x >>> 16), 0x45d9f3b) >>> 0;
    x = Math.imul(x ^ (x >>> 16), 0x45d9f3b) >>> 0;
    out[i - start] = (x ^ (x >>> 16)) & 0xff;
  }
  return out;
}

/** Streams bytes [start, end) of object `seed` in 64 KiB chunks; optionally fails after `failAfter` bytes. */
export function generated(seed: number, start: number, end: number, failAfter?: number): Readable {
  let pos = start;
  return new Readable({
    read() {
      if (failAfter !== undefined && pos - start >= failAfter) {
        this.destroy(new Error('client went away'));
        return;
      }
      if (pos >= end) {
        this.push(null);
        return;
      }
      const limit = failAfter === undefined ? end : Math.min(end, start + failAfter);
      const next = Math.min(pos + 64 * 1024, limit);
      const chunk = bytesAt(seed, pos, next);
      pos = next;
      this.push(chunk);
    },
  });
}

export async function sha256Of(stream: Readable): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(stream, hash);
  return hash.digest('hex');
}

const expectedSha256 = (seed: number, start: number, end: number) => sha256Of(generated(seed, start, end));

/**
 * The behaviour every BlobStore must show, run against each implementation (local directory,
 * s3rver, MinIO when available). Keys are unique per run so a shared bucket is fine.
 */
export function describeBlobStoreContract(
  name: string,
  setup: () => Promise<BlobStoreContractSubject>,
  options: { skip?: string } = {},
): void {
  if (options.skip) {
    describe.skip(`${name} — skipped: ${options.skip}`, () => {
      it('runs the blob store contract', () => {});
    });
    return;
  }

  describe(name, () => {
    let subject: BlobStoreContractSubject;
    let store: BlobStore;
    const run = randomUUID().slice(0, 8);
    const key = (what: string) => `contract/${run}/${what}`;

    beforeAll(async () => {
      subject = await setup();
      store = subject.store;
    });
    afterAll(async () => {
      await subject?.teardown?.();
    });

    /** Writes parts of object `seed`, laid out in `partSize` parts, in the order given. */
    const writeParts = (k: string, id: string, seed: number, partSize: number, total: number, numbers: number[]) =>
      Promise.all(
        numbers.map((n) => {
          const start = (n - 1) * partSize;
          const end = Math.min(start + partSize, total);
          return store.writePart(k, id, n, generated(seed, start, end), { size: end - start });
        }),
      );

    describe('whole objects', () => {
      it('puts an object and reads it back whole and by inclusive byte range', async () => {
        const k = key('put/one.bin');
        const sha256 = await expectedSha256(1, 0, 1000);
        expect(await store.put(k, generated(1, 0, 1000), { size: 1000, sha256 })).toEqual({ size: 1000, sha256 });
        const stat = await store.stat(k);
        expect(stat?.size).toBe(1000);
        expect(stat?.modifiedAt).toBeInstanceOf(Date);
        expect(await sha256Of(await store.read(k))).toBe(sha256);
        expect(await store.digest(k)).toEqual({ size: 1000, sha256 });
        expect(await buffer(await store.read(k, { start: 2, end: 5 }))).toEqual(bytesAt(1, 2, 6));
        expect(await buffer(await store.read(k, { start: 990 }))).toEqual(bytesAt(1, 990, 1000));
        expect(await buffer(await store.read(k, { start: 998, end: 5000 }))).toEqual(bytesAt(1, 998, 1000));
      });

      it('puts a source of undeclared length, larger than any single buffer', async () => {
        const k = key('put/unsized.bin');
        const total = 9 * MiB + 3;
        const result = await store.put(k, generated(2, 0, total));
        expect(result).toEqual({ size: total, sha256: await expectedSha256(2, 0, total) });
        expect((await store.stat(k))?.size).toBe(total);
        expect(await sha256Of(await store.read(k))).toBe(result.sha256);
      });

      it('replaces an object atomically and keeps the old one when the new write is refused', async () => {
        const k = key('put/replaced.bin');
        await store.put(k, generated(3, 0, 500));
        await expect(store.put(k, generated(4, 0, 700), { size: 600 })).rejects.toBeInstanceOf(BlobSizeMismatchError);
        await expect(store.put(k, generated(4, 0, 500), { size: 600 })).rejects.toMatchObject({
          code: 'size_mismatch',
          expected: 600,
          received: 500,
          tooLarge: false,
        });
        await expect(store.put(k, generated(4, 0, 600), { sha256: 'ab'.repeat(32) })).rejects.toBeInstanceOf(
          BlobChecksumMismatchError,
        );
        expect(await buffer(await store.read(k))).toEqual(bytesAt(3, 0, 500));
        await store.put(k, generated(4, 0, 600), { size: 600 });
        expect(await buffer(await store.read(k))).toEqual(bytesAt(4, 0, 600));
      });

      it('leaves no object when a refused put was the first write of its key', async () => {
        const k = key('put/never.bin');
        await expect(store.put(k, generated(5, 0, 100), { size: 99 })).rejects.toBeInstanceOf(BlobSizeMismatchError);
        expect(await store.stat(k)).toBeNull();
      });

      it('passes the error of a failing source through unchanged and stores nothing', async () => {
        const k = key('put/cut.bin');
        await expect(store.put(k, generated(6, 0, 2 * MiB, MiB))).rejects.toThrow('client went away');
        expect(await store.stat(k)).toBeNull();
      });

      it('tells a missing object by null and BlobNotFoundError, and deletes idempotently', async () => {
        const k = key('put/deleted.bin');
        expect(await store.stat(key('none'))).toBeNull();
        await expect(store.read(key('none'))).rejects.toBeInstanceOf(BlobNotFoundError);
        await expect(store.digest(key('none'))).rejects.toBeInstanceOf(BlobNotFoundError);
        await store.put(k, generated(7, 0, 10));
        await store.delete(k);
        await store.delete(k);
        await store.delete(key('never-existed'));
        expect(await store.stat(k)).toBeNull();
        await expect(store.read(k)).rejects.toMatchObject({ code: 'not_found', key: k });
      });

      it('refuses a range that starts at or past the end, or is inverted', async () => {
        const k = key('put/ranged.bin');
        await store.put(k, generated(8, 0, 10));
        await expect(store.read(k, { start: 10 })).rejects.toBeInstanceOf(BlobRangeNotSatisfiableError);
        await expect(store.read(k, { start: 5, end: 4 })).rejects.toBeInstanceOf(BlobRangeNotSatisfiableError);
        await expect(store.read(k, { start: -1 })).rejects.toBeInstanceOf(BlobRangeNotSatisfiableError);
      });

      it('refuses keys that could escape the root, before touching the store', async () => {
        for (const bad of ['../etc/passwd', '/abs', 'a//b', 'a/../b', 'a/./b', 'sp ace', 'a\\b', '', 'x/']) {
          await expect(store.stat(bad)).rejects.toBeInstanceOf(InvalidBlobKeyError);
          await expect(store.read(bad)).rejects.toBeInstanceOf(InvalidBlobKeyError);
          await expect(store.digest(bad)).rejects.toBeInstanceOf(InvalidBlobKeyError);
          await expect(store.put(bad, Readable.from([Buffer.from('x')]))).rejects.toBeInstanceOf(InvalidBlobKeyError);
          await expect(store.delete(bad)).rejects.toBeInstanceOf(InvalidBlobKeyError);
          await expect(store.createMultipart(bad, { partSize: MIN_PART_SIZE })).rejects.toBeInstanceOf(
            InvalidBlobKeyError,
          );
        }
      });
    });

    describe('multipart uploads', () => {
      const partSize = MIN_PART_SIZE;
      const total = 2 * partSize + 1234;

      it('assembles parts written out of order, in parallel and one of them twice into the exact object', async () => {
        const k = key('mp/ordered.bin');
        const { multipartId } = await store.createMultipart(k, { partSize });
        const first = await writeParts(k, multipartId, 10, partSize, total, [3, 1]);
        const [two] = await writeParts(k, multipartId, 10, partSize, total, [2]);
        const [oneAgain] = await writeParts(k, multipartId, 10, partSize, total, [1]);
        expect(oneAgain!.sha256).toBe(first[1]!.sha256);
        const receipts = [oneAgain!, two!, first[0]!];
        expect(receipts.map((r) => [r.partNumber, r.size])).toEqual([
          [1, partSize],
          [2, partSize],
          [3, 1234],
        ]);
        expect(receipts[1]!.sha256).toBe(await expectedSha256(10, partSize, 2 * partSize));

        const { size } = await store.completeMultipart(k, multipartId, receipts);
        expect(size).toBe(total);
        expect((await store.stat(k))?.size).toBe(total);
        expect(await sha256Of(await store.read(k))).toBe(await expectedSha256(10, 0, total));
        // A range across a part boundary.
        expect(await buffer(await store.read(k, { start: partSize - 3, end: partSize + 2 }))).toEqual(
          bytesAt(10, partSize - 3, partSize + 3),
        );
      });

      it('survives a part stream cut mid-way: the error passes through, a re-send completes the object', async () => {
        const k = key('mp/cut.bin');
        const { multipartId } = await store.createMultipart(k, { partSize });
        const [one, three] = await writeParts(k, multipartId, 11, partSize, total, [1, 3]);
        await expect(
          store.writePart(k, multipartId, 2, generated(11, partSize, 2 * partSize, 1 * MiB + 17), { size: partSize }),
        ).rejects.toThrow('client went away');
        const [two] = await writeParts(k, multipartId, 11, partSize, total, [2]);
        expect((await store.completeMultipart(k, multipartId, [one!, two!, three!])).size).toBe(total);
        expect(await sha256Of(await store.read(k))).toBe(await expectedSha256(11, 0, total));
      });

      it('refuses a part of the wrong size, keeps nothing usable of it, and accepts it re-sent', async () => {
        const k = key('mp/sized.bin');
        const { multipartId } = await store.createMultipart(k, { partSize });
        const [one] = await writeParts(k, multipartId, 12, partSize, total, [1]);
        const tooLong = generated(12, partSize, 2 * partSize + MiB);
        await expect(store.writePart(k, multipartId, 2, tooLong, { size: partSize })).rejects.toMatchObject({
          code: 'size_mismatch',
          tooLarge: true,
        });
        // The store stops reading but leaves the rest of the source to its owner (an HTTP handler still answers).
        expect(tooLong.destroyed).toBe(false);
        tooLong.destroy();
        const tooShort = generated(12, partSize, 2 * partSize - 1);
        await expect(store.writePart(k, multipartId, 2, tooShort, { size: partSize })).rejects.toMatchObject({
          code: 'size_mismatch',
          expected: partSize,
          received: partSize - 1,
        });
        const [three] = await writeParts(k, multipartId, 12, partSize, total, [3]);
        if (subject.strictMultipart) {
          const unusable = { partNumber: 2, etag: one!.etag };
          await expect(store.completeMultipart(k, multipartId, [one!, unusable, three!])).rejects.toBeInstanceOf(
            InvalidBlobPartError,
          );
        }
        const [two] = await writeParts(k, multipartId, 12, partSize, total, [2]);
        expect((await store.completeMultipart(k, multipartId, [one!, two!, three!])).size).toBe(total);
        expect(await sha256Of(await store.read(k))).toBe(await expectedSha256(12, 0, total));
      });

      it('checks a part against its expected sha256', async () => {
        const k = key('mp/checked.bin');
        const { multipartId } = await store.createMultipart(k, { partSize });
        const sha256 = await expectedSha256(13, 0, 1000);
        const wrong = generated(14, 0, 1000);
        await expect(store.writePart(k, multipartId, 1, wrong, { size: 1000, sha256 })).rejects.toMatchObject({
          code: 'checksum_mismatch',
          expected: sha256,
        });
        const good = await store.writePart(k, multipartId, 1, generated(13, 0, 1000), { size: 1000, sha256 });
        expect(good).toMatchObject({ partNumber: 1, size: 1000, sha256 });
        expect(await store.completeMultipart(k, multipartId, [good])).toEqual({ size: 1000 });
        expect(await buffer(await store.read(k))).toEqual(bytesAt(13, 0, 1000));
      });

      it('completes idempotently', async () => {
        const k = key('mp/twice.bin');
        const { multipartId } = await store.createMultipart(k, { partSize });
        const receipts = await writeParts(k, multipartId, 15, partSize, total, [1, 2, 3]);
        expect(await store.completeMultipart(k, multipartId, receipts)).toEqual({ size: total });
        expect(await store.completeMultipart(k, multipartId, receipts)).toEqual({ size: total });
        expect(await sha256Of(await store.read(k))).toBe(await expectedSha256(15, 0, total));
      });

      it('aborts idempotently and drops the staged parts', async () => {
        const k = key('mp/aborted.bin');
        const staged = await subject.stagedUploads?.();
        const { multipartId } = await store.createMultipart(k, { partSize });
        const [one] = await writeParts(k, multipartId, 16, partSize, total, [1]);
        if (subject.stagedUploads) expect(await subject.stagedUploads()).toBe(staged! + 1);
        await store.abortMultipart(k, multipartId);
        await store.abortMultipart(k, multipartId);
        await store.abortMultipart(k, 'never-issued');
        if (subject.stagedUploads) expect(await subject.stagedUploads()).toBe(staged);
        if (subject.strictMultipart) {
          await expect(store.writePart(k, multipartId, 2, generated(16, 0, 10), { size: 10 })).rejects.toBeInstanceOf(
            MultipartNotFoundError,
          );
          await expect(store.completeMultipart(k, multipartId, [one!])).rejects.toBeInstanceOf(MultipartNotFoundError);
        }
        expect(await store.stat(k)).toBeNull();
      });

      it('refuses an upload id it never issued', async ({ skip }) => {
        if (!subject.strictMultipart) skip('this store accepts parts for any upload id');
        const k = key('mp/unknown.bin');
        await expect(store.writePart(k, 'nope', 1, generated(17, 0, 10), { size: 10 })).rejects.toBeInstanceOf(
          MultipartNotFoundError,
        );
        await expect(store.completeMultipart(k, 'nope', [{ partNumber: 1, etag: 'x' }])).rejects.toBeInstanceOf(
          MultipartNotFoundError,
        );
        // An upload belongs to its key.
        const { multipartId } = await store.createMultipart(k, { partSize });
        await expect(
          store.writePart(key('mp/other.bin'), multipartId, 1, generated(17, 0, 10), { size: 10 }),
        ).rejects.toBeInstanceOf(MultipartNotFoundError);
        await store.abortMultipart(k, multipartId);
      });

      it('refuses part sizes, part numbers and part lists that S3 would refuse', async () => {
        const k = key('mp/limits.bin');
        await expect(store.createMultipart(k, { partSize: MIN_PART_SIZE - 1 })).rejects.toBeInstanceOf(
          InvalidBlobPartError,
        );
        const { multipartId } = await store.createMultipart(k, { partSize });
        for (const n of [0, 10_001, 1.5]) {
          await expect(store.writePart(k, multipartId, n, generated(18, 0, 1), { size: 1 })).rejects.toBeInstanceOf(
            InvalidBlobPartError,
          );
        }
        const part = (partNumber: number) => ({ partNumber, etag: 'e' });
        for (const parts of [[], [part(2), part(1)], [part(1), part(3)], [part(2)]]) {
          await expect(store.completeMultipart(k, multipartId, parts)).rejects.toBeInstanceOf(InvalidBlobPartError);
        }
        await store.abortMultipart(k, multipartId);
      });

      it('streams a 64 MiB+ object through writePart and read without holding it in memory', async () => {
        const k = key('mp/large.bin');
        const large = 64 * MiB;
        const size = large + MiB + 7;
        const { multipartId } = await store.createMultipart(k, { partSize: large });
        const parts = await writeParts(k, multipartId, 19, large, size, [2, 1]);
        const expected = await expectedSha256(19, 0, size);
        expect(await store.completeMultipart(k, multipartId, [parts[1]!, parts[0]!])).toEqual({ size });
        expect(await sha256Of(await store.read(k))).toBe(expected);
        expect(await store.digest(k)).toEqual({ size, sha256: expected });
        expect(await buffer(await store.read(k, { start: large - 10, end: large + 9 }))).toEqual(
          bytesAt(19, large - 10, large + 10),
        );
        await store.delete(k);
      });
    });

    describe('a store that is down', () => {
      it('fails with BlobStorageError, never with not-found, and within the test timeout', async ({ skip }) => {
        const down = subject.unreachable;
        if (!down) return skip('no unreachable variant of this store');
        const k = key('down.bin');
        const isStorageError = (p: Promise<unknown>) => expect(p).rejects.toBeInstanceOf(BlobStorageError);
        await isStorageError(down.stat(k));
        await isStorageError(down.read(k));
        await isStorageError(down.digest(k));
        await isStorageError(down.put(k, generated(20, 0, 100), { size: 100 }));
        await isStorageError(down.put(k, generated(20, 0, 100)));
        await isStorageError(down.delete(k));
        await isStorageError(down.createMultipart(k, { partSize: MIN_PART_SIZE }));
        await isStorageError(down.writePart(k, 'some-id', 1, generated(20, 0, 100), { size: 100 }));
        await isStorageError(down.completeMultipart(k, 'some-id', [{ partNumber: 1, etag: 'e' }]));
        await isStorageError(down.abortMultipart(k, 'some-id'));
        await expect(down.read(k)).rejects.toMatchObject({ code: 'storage_failed' });
      }, 30_000);
    });
  });
}
