import { createHash } from 'node:crypto';
import { crc32 } from 'node:zlib';

export interface DigestResult {
  sha256: string;
  /** CRC32 of bytes [0, dataEnd) as last given to update(); over everything when no DataEnd was found. */
  dataSectionCrc: number;
  bytes: number;
}

/**
 * Whole-file sha256 and the data-section CRC, fed every byte once, in order. The scanner parses a piece before
 * handing it here, so `dataEnd` (the offset where the DataEnd record starts, Infinity while unknown) is already
 * known for every byte passed: the opcode byte that starts DataEnd is seen before the digest reaches it.
 */
export interface StreamDigest {
  update(piece: Uint8Array, dataEnd: number): void | Promise<void>;
  finish(): Promise<DigestResult>;
  /** Releases resources after a failure; finish() is not called then. */
  abort(): void;
}

export class InlineDigest implements StreamDigest {
  #hash = createHash('sha256');
  #crc = 0;
  #bytes = 0;

  update(piece: Uint8Array, dataEnd: number): void {
    this.#hash.update(piece);
    if (this.#bytes < dataEnd) {
      const n = Math.min(piece.byteLength, dataEnd - this.#bytes);
      this.#crc = crc32(n === piece.byteLength ? piece : piece.subarray(0, n), this.#crc);
    }
    this.#bytes += piece.byteLength;
  }

  async finish(): Promise<DigestResult> {
    return { sha256: this.#hash.digest('hex'), dataSectionCrc: this.#crc, bytes: this.#bytes };
  }

  abort(): void {}
}
