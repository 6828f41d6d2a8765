/**
 * A small LZ4 frame encoder (lz4 frame format 1.6: independent blocks, no checksums) for writing lz4-chunked test
 * recordings: @foxglove/wasm-lz4 only decompresses. Greedy single-probe matching; correct rather than fast or
 * tight.
 */
const MAX_BLOCK = 4 * 1024 * 1024;
const MIN_MATCH = 4;
/** The last match must start at least 12 bytes before the block end; the last 5 bytes are literals (block format). */
const MF_LIMIT = 12;
const LAST_LITERALS = 5;

function xxh32Small(bytes: Uint8Array): number {
  const P1 = 2654435761;
  const P2 = 2246822519;
  const P3 = 3266489917;
  const P4 = 668265263;
  const P5 = 374761393;
  const rotl = (x: number, r: number) => ((x << r) | (x >>> (32 - r))) >>> 0;
  let h = (P5 + bytes.length) >>> 0;
  let i = 0;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (; i + 4 <= bytes.length; i += 4) {
    h = (h + Math.imul(view.getUint32(i, true), P3)) >>> 0;
    h = Math.imul(rotl(h, 17), P4) >>> 0;
  }
  for (; i < bytes.length; i++) {
    h = (h + Math.imul(bytes[i]!, P5)) >>> 0;
    h = Math.imul(rotl(h, 11), P1) >>> 0;
  }
  h ^= h >>> 15;
  h = Math.imul(h, P2) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, P3) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}

function compressBlock(src: Uint8Array): Uint8Array {
  const n = src.length;
  const out = new Uint8Array(n + Math.ceil(n / 255) + 16);
  const view = new DataView(src.buffer, src.byteOffset, src.byteLength);
  const table = new Int32Array(1 << 16).fill(-1);
  let o = 0;
  const length = (v: number) => {
    for (; v >= 255; v -= 255) out[o++] = 255;
    out[o++] = v;
  };
  const emit = (anchor: number, end: number, matchOffset: number, matchLength: number) => {
    const lit = end - anchor;
    const m = matchLength - MIN_MATCH;
    out[o++] = (Math.min(lit, 15) << 4) | (matchLength > 0 ? Math.min(m, 15) : 0);
    if (lit >= 15) length(lit - 15);
    out.set(src.subarray(anchor, end), o);
    o += lit;
    if (matchLength > 0) {
      out[o++] = matchOffset & 0xff;
      out[o++] = matchOffset >>> 8;
      if (m >= 15) length(m - 15);
    }
  };
  let anchor = 0;
  let i = 0;
  while (i < n - MF_LIMIT) {
    const seq = view.getUint32(i, true);
    const h = Math.imul(seq, 2654435761) >>> 16;
    const ref = table[h]!;
    table[h] = i;
    if (ref >= 0 && i - ref <= 65535 && view.getUint32(ref, true) === seq) {
      let len = MIN_MATCH;
      while (i + len < n - LAST_LITERALS && src[ref + len] === src[i + len]) len++;
      emit(anchor, i, i - ref, len);
      i += len;
      anchor = i;
    } else i++;
  }
  emit(anchor, n, 0, 0);
  return out.subarray(0, o);
}

export function lz4FrameCompress(data: Uint8Array): Uint8Array {
  const descriptor = Uint8Array.of(0x60, 0x70); // version 01, independent blocks; 4 MiB max block
  const parts: Uint8Array[] = [
    Uint8Array.of(0x04, 0x22, 0x4d, 0x18),
    descriptor,
    Uint8Array.of((xxh32Small(descriptor) >>> 8) & 0xff),
  ];
  for (let at = 0; at < data.length; at += MAX_BLOCK) {
    const raw = data.subarray(at, Math.min(data.length, at + MAX_BLOCK));
    const packed = compressBlock(raw);
    const stored = packed.length < raw.length;
    const size = new Uint8Array(4);
    new DataView(size.buffer).setUint32(0, stored ? packed.length : (raw.length | 0x80000000) >>> 0, true);
    parts.push(size, stored ? packed : raw);
  }
  parts.push(new Uint8Array(4)); // end mark
  return Buffer.concat(parts);
}
