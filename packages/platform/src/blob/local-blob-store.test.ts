import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlobStorageError, InvalidBlobKeyError, InvalidBlobPartError } from './blob-errors.js';
import { describeBlobStoreContract, generated } from './blob-store.contract.js';
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
    expect(await entries(path.join(root, 'multipart', multipartId))).toEqual(['data', 'parts', 'upload.json']);
    const part = await store.writePart(key, multipartId, 1, generated(1, 0, 100), { size: 100 });
    expect(await entries(path.join(root, 'multipart', multipartId, 'parts'))).toEqual(['1.json']);
    await store.completeMultipart(key, multipartId, [part]);
    expect(await entries(path.join(root, 'multipart'))).toEqual([]);
    expect(await entries(path.join(root, 'objects', 'org', 'dev', 'up1'))).toEqual(['recording.mcap']);
    await expect(store.put('org/x.bin', generated(2, 0, 10), { size: 11 })).rejects.toThrow();
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

  it('completes once when two completions race', async () => {
    const key = 'org/race.bin';
    const { multipartId } = await store.createMultipart(key, { partSize: MIN_PART_SIZE });
    const part = await store.writePart(key, multipartId, 1, generated(3, 0, 1000), { size: 1000 });
    const results = await Promise.all([
      store.completeMultipart(key, multipartId, [part]),
      store.completeMultipart(key, multipartId, [part]),
    ]);
    expect(results).toEqual([{ size: 1000 }, { size: 1000 }]);
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
