import { loadZstdCompress } from '../decompressors.js';
import { lz4FrameCompress } from './lz4-frame.js';

export type Compression = 'none' | 'zstd' | 'lz4';

let compressZstd: ((data: Uint8Array, level?: number) => Uint8Array) | undefined;

/** The McapWriter `compressChunk` option for a compression; undefined for none. */
export async function chunkCompressor(
  compression: Compression,
  zstdLevel = 3,
): Promise<((data: Uint8Array) => { compression: string; compressedData: Uint8Array }) | undefined> {
  if (compression === 'none') return undefined;
  if (compression === 'lz4') return (data) => ({ compression: 'lz4', compressedData: lz4FrameCompress(data) });
  compressZstd ??= await loadZstdCompress();
  const zstd = compressZstd;
  return (data) => ({ compression: 'zstd', compressedData: zstd(data, zstdLevel) });
}
