import { mkdtemp, readdir, rename, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../testing/wait-for.js';
import {
  BlobSizeMismatchError,
  BlobStorageError,
  InvalidBlobKeyError,
  InvalidBlobPartError,
  MultipartBusyError,
} from './blob-errors.js';
import { bytesAt, describeBlobStoreContract, generated } from './blob-store.contract.js';
import { MIN_PART_SIZE } from './blob-store.js';
import { LocalBlobStore } from './local-blob-store.js';

async function entries(dir: string): Promise<string[]> {
  return readdir(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [];
    throw err;
  });
}

describeBlobStoreContract('LocalBlobStore', async () => {
  const root = await mkdtemp(path.join(tmpdir(), 'ferry-blob-'));
  return {
    store: new LocalBlobStore({ root }),
    strictMultipart: true,
    stagedUploads: async () => (await entries(path.join(root, 'multipart'))).length,
    teardown: () => rm(root, { recursive: true, force: true }),
  };
});

describe('LocalBlobStore on disk', () => {
  let root: string;
  let store: LocalBlobStore;
  beforeAll(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'ferry-blob-'));
    store = new LocalBlobStore({ root });
  });
  afterAll(() => rm(root, { recursive: true, force: true }));

  it('completes by renaming the staging file: no staging, no temp file, no copy left behind', async () => {
    const key = 'org/dev/up1/recording.mcap';
    const { multipartId } = await store.createMultipart(key, { partSize: MIN_PART_SIZE });
    expect(await entries(path.join(root, 'multipart', multipartId))).toEqual([
      'data',
      'parts',
      'upload.json',
      'writers',
    ]);
    const part = await store.writePart(key, multipartId, 1, generated(1, 0, 100), { size: 100 });
    expect(await entries(path.join(root, 'multipart', multipartId, 'parts'))).toEqual(['1.json']);
    await store.completeMultipart(key, multipartId, [part]);
    expect(await entries(path.join(root, 'multipart'))).toEqual([]);
    expect(await entries(path.join(root, 'objects', 'org', 'dev', 'up1'))).toEqual(['recording.mcap']);
    await expect(store.put('org/x.bin', generated(2, 0, 10), { size: 11 })).rejects.toBeInstanceOf(
      BlobSizeMismatchError,
    );
    expect(await entries(path.join(root, 'tmp'))).toEqual([]);
  });

  it('leaves no temp file behind when a put fails while its file is still being opened', async () => {
    // The failure destroys the file stream before its open completes; a cleanup that does not wait for the stream
    // to close removes nothing yet, and the open then creates the file for good. The window is the open's, not the
    // test's: without the wait, 2,000 of these leaked files every time it was tried here.
    const failing = (): AsyncIterable<Uint8Array> => ({
      [Symbol.asyncIterator]: () => ({
        next: () => Promise.reject(new Error('the device went away')),
      }),
    });
    for (let i = 0; i < 2_000; i++) {
      await expect(store.put(`failed/${i}`, failing())).rejects.toThrow('the device went away');
    }
    expect(await entries(path.join(root, 'tmp'))).toEqual([]);
  });

  it('refuses a part larger than the part size before reading it (S3 only finds out at completion)', async () => {
    const key = 'org/oversized.bin';
    const { multipartId } = await store.createMultipart(key, { partSize: MIN_PART_SIZE });
    await expect(
      store.writePart(key, multipartId, 1, generated(6, 0, 10), { size: MIN_PART_SIZE + 1 }),
    ).rejects.toBeInstanceOf(InvalidBlobPartError);
    await store.abortMultipart(key, multipartId);
  });

  it('answers two concurrent completions of one upload with its size, leaving one whole object and no staging', async () => {
    const key = 'org/race.bin';
    const { multipartId } = await store.createMultipart(key, { partSize: MIN_PART_SIZE });
    const part = await store.writePart(key, multipartId, 1, generated(3, 0, 1000), { size: 1000 });
    const results = await Promise.all([
      store.completeMultipart(key, multipartId, [part]),
      store.completeMultipart(key, multipartId, [part]),
    ]);
    expect(results).toEqual([{ size: 1000 }, { size: 1000 }]);
    expect(await buffer(await store.read(key))).toEqual(bytesAt(3, 0, 1000));
    expect(await entries(path.join(root, 'multipart'))).not.toContain(multipartId);
  });

  it('will not complete while a part is being written, and completes once the write has ended', async () => {
    const key = 'org/busy.bin';
    const { multipartId } = await store.createMultipart(key, { partSize: MIN_PART_SIZE });
    const writers = path.join(root, 'multipart', multipartId, 'writers');
    const slow = new PassThrough();
    const writing = store.writePart(key, multipartId, 1, slow, { size: 1000 });
    slow.write(bytesAt(7, 0, 500));
    await waitFor(async () => (await entries(writers)).length === 1, { what: 'the lease' });
    const done = { partNumber: 1, etag: 'not yet known' };
    await expect(store.completeMultipart(key, multipartId, [done])).rejects.toMatchObject({
      code: 'multipart_busy',
      reason: 'a part is still being written',
    });
    slow.end(bytesAt(7, 500, 1000));
    const part = await writing;
    expect(await entries(writers)).toEqual([]);
    expect(await store.completeMultipart(key, multipartId, [part])).toEqual({ size: 1000 });
    expect(await buffer(await store.read(key))).toEqual(bytesAt(7, 0, 1000));
  });

  it('refuses part writes while a completion holds the seal, and takes over a seal and a writer lease gone stale', async () => {
    const key = 'org/sealed.bin';
    const { multipartId } = await store.createMultipart(key, { partSize: MIN_PART_SIZE });
    const part = await store.writePart(key, multipartId, 1, generated(8, 0, 100), { size: 100 });
    const dir = path.join(root, 'multipart', multipartId);
    // A completion caught between its seal and its rename.
    await rename(path.join(dir, 'upload.json'), path.join(dir, 'sealed.json'));
    await expect(store.writePart(key, multipartId, 2, generated(8, 0, 10), { size: 10 })).rejects.toBeInstanceOf(
      MultipartBusyError,
    );
    const impatient = new LocalBlobStore({ root, completionWaitMs: 100 });
    await expect(impatient.completeMultipart(key, multipartId, [part])).rejects.toMatchObject({
      code: 'multipart_busy',
      reason: 'another completion is running',
    });
    // As a completion and a writer that died leave them: an hour-old seal and lease (aged by hand here).
    const longAgo = new Date(Date.now() - 3_600_000);
    await utimes(path.join(dir, 'sealed.json'), longAgo, longAgo);
    await writeFile(path.join(dir, 'writers', 'dead-writer'), '');
    await utimes(path.join(dir, 'writers', 'dead-writer'), longAgo, longAgo);
    expect(await store.completeMultipart(key, multipartId, [part])).toEqual({ size: 100 });
    expect(await entries(dir)).toEqual([]);
  });

  it('reopens the upload when completion finds a part missing, so the part can still be sent', async () => {
    const key = 'org/reopened.bin';
    const { multipartId } = await store.createMultipart(key, { partSize: MIN_PART_SIZE });
    const one = await store.writePart(key, multipartId, 1, generated(9, 0, MIN_PART_SIZE), { size: MIN_PART_SIZE });
    const missing = { partNumber: 2, etag: 'e' };
    await expect(store.completeMultipart(key, multipartId, [one, missing])).rejects.toBeInstanceOf(
      InvalidBlobPartError,
    );
    const two = await store.writePart(key, multipartId, 2, generated(9, 0, 10), { size: 10 });
    expect(await store.completeMultipart(key, multipartId, [one, two])).toEqual({ size: MIN_PART_SIZE + 10 });
  });

  it('refuses a key that is a prefix directory of other keys, which S3 would allow', async () => {
    await store.put('org/nested/a.bin', generated(4, 0, 10));
    await expect(store.put('org/nested', generated(4, 0, 10))).rejects.toBeInstanceOf(InvalidBlobKeyError);
    await expect(store.put('org/nested/a.bin/b', generated(4, 0, 10))).rejects.toBeInstanceOf(InvalidBlobKeyError);
    expect(await store.stat('org/nested')).toBeNull();
  });

  it('fails writes with BlobStorageError when its directory is unusable', async () => {
    const file = path.join(root, 'not-a-directory');
    await writeFile(file, 'x');
    const broken = new LocalBlobStore({ root: file });
    await expect(broken.put('org/a.bin', generated(5, 0, 10))).rejects.toBeInstanceOf(BlobStorageError);
    await expect(broken.createMultipart('org/a.bin', { partSize: MIN_PART_SIZE })).rejects.toBeInstanceOf(
      BlobStorageError,
    );
  });
});
