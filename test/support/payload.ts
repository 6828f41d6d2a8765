import { createCipheriv, createHash } from 'node:crypto';
import { Readable } from 'node:stream';

/**
 * Deterministic pseudo-random bytes with random access: the AES-128-CTR keystream of `seed`, so any
 * range [start, start + length) can be streamed on its own (a part, a resend) without holding the file.
 * `start` must be a multiple of 16 (part sizes are).
 */
export class Payload {
  private readonly key: Buffer;

  constructor(
    readonly size: number,
    seed = 'ferry',
  ) {
    this.key = createHash('sha256').update(seed).digest().subarray(0, 16);
  }

  stream(start = 0, length = this.size - start): Readable {
    if (start % 16 !== 0) throw new Error('start must be a multiple of 16');
    const iv = Buffer.alloc(16);
    iv.writeBigUInt64BE(BigInt(start / 16), 8);
    const cipher = createCipheriv('aes-128-ctr', this.key, iv);
    const zeros = Buffer.alloc(256 * 1024);
    let left = length;
    return new Readable({
      read() {
        if (left <= 0) return this.push(null);
        const n = Math.min(left, zeros.length);
        left -= n;
        this.push(cipher.update(zeros.subarray(0, n)));
      },
    });
  }

  async sha256(): Promise<string> {
    const hash = createHash('sha256');
    for await (const chunk of this.stream()) hash.update(chunk as Buffer);
    return hash.digest('hex');
  }
}
