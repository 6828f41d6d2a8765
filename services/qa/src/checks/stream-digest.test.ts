import { createHash, randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { InlineDigest, type StreamDigest } from './stream-digest.js';
import { WorkerDigest } from './worker-digest.js';

/** Feeds `data` in pieces of varying size; the DataEnd offset becomes known when the piece holding it arrives. */
async function digestOf(digest: StreamDigest, data: Uint8Array, dataEnd: number) {
  let at = 0;
  for (let k = 0; at < data.length; k++) {
    const piece = data.subarray(at, Math.min(data.length, at + 1 + ((k * 7919) % 70_000)));
    const known = dataEnd < at + piece.length ? dataEnd : Number.POSITIVE_INFINITY;
    const pending = digest.update(piece, known);
    if (pending) await pending;
    at += piece.length;
  }
  return digest.finish();
}

describe('stream digests', () => {
  const data = randomBytes(3_000_000);
  const dataEnd = 2_345_678;
  const expected = {
    sha256: createHash('sha256').update(data).digest('hex'),
    dataSectionCrc: crc32(data.subarray(0, dataEnd)),
    bytes: data.length,
  };

  it('inline: sha256 of everything, CRC of the bytes before DataEnd', async () => {
    expect(await digestOf(new InlineDigest(), data, dataEnd)).toEqual(expected);
  });

  it('worker: the same results through a ring much smaller than the input (wrapping, waiting for room)', async () => {
    expect(await digestOf(new WorkerDigest({ ringBytes: 64 * 1024 }), data, dataEnd)).toEqual(expected);
  });

  it('worker: CRCs everything when no DataEnd is ever found', async () => {
    const result = await digestOf(new WorkerDigest({ ringBytes: 1 << 20 }), data, Number.POSITIVE_INFINITY);
    expect(result.dataSectionCrc).toBe(crc32(data));
  });

  it('refuses a ring size that is not a power of two', () => {
    expect(() => new WorkerDigest({ ringBytes: 100_000 })).toThrow('ringBytes must be a power of two');
  });
});
