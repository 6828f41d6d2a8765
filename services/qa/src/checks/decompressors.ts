import { createRequire } from 'node:module';

/**
 * Decompresses one chunk's records into at most `size` bytes; throws when the data does not decode. The result
 * may be a view of a buffer that the next call reuses: use it before decompressing again.
 */
export type Decompress = (data: Uint8Array, size: number) => Uint8Array;

/** Decompressors by MCAP compression name (`""` = none is handled by the scanner). */
export type Decompressors = Readonly<Record<string, Decompress>>;

/** The emscripten module as both packages build it (their `dist/*.js` factories). */
interface WasmModule {
  ready: Promise<unknown>;
  HEAPU8: Uint8Array;
  _malloc(size: number): number;
  _free(pointer: number): void;
}
interface ZstdWasm extends WasmModule {
  _decompress(dst: number, dstSize: number, src: number, srcSize: number): number;
}
interface Lz4Wasm extends WasmModule {
  _createDecompressionContext(): number;
  _decompressFrame(context: number, dst: number, dstSize: number, src: number, srcSize: number): number;
}
interface ZstdPackage {
  isLoaded: Promise<unknown>;
  compress(buffer: Uint8Array, level?: number): Uint8Array;
}

const PROCESS_EVENTS = ['uncaughtException', 'unhandledRejection'] as const;

/**
 * Runs `load` and then removes any process `uncaughtException`/`unhandledRejection` listener it added. Emscripten
 * builds of some versions install ones that rethrow (stack-notes, "MCAP with @mcap/core"): loaded in a service
 * they would change how every unrelated crash is reported.
 */
export async function withoutProcessHandlers<T>(load: () => Promise<T>): Promise<T> {
  const listeners = (event: string) => process.listeners(event as 'uncaughtException') as ((...a: unknown[]) => void)[];
  const before = new Map(PROCESS_EVENTS.map((e) => [e, new Set(listeners(e))]));
  try {
    return await load();
  } finally {
    for (const event of PROCESS_EVENTS) {
      for (const listener of listeners(event)) {
        if (!before.get(event)!.has(listener)) process.removeListener(event, listener);
      }
    }
  }
}

/**
 * One region of the module's heap for input and one for output, grown on demand and reused for every chunk:
 * the packages' own wrappers allocate, copy out and free per call, which costs more than decoding raw blocks.
 */
class HeapRegions {
  #src = 0;
  #srcSize = 0;
  #dst = 0;
  #dstSize = 0;

  constructor(private readonly mod: WasmModule) {}

  #region(pointer: number, have: number, need: number): number {
    if (need <= have) return pointer;
    if (pointer) this.mod._free(pointer);
    const grown = this.mod._malloc(need);
    if (!grown) throw new Error(`cannot allocate ${need} bytes of wasm memory`);
    return grown;
  }

  /** Copies `data` into the heap; returns [src, dst] pointers with room for `size` output bytes. */
  prepare(data: Uint8Array, size: number): [number, number] {
    const srcNeed = Math.max(data.byteLength, 1);
    const dstNeed = Math.max(size, 1);
    this.#src = this.#region(this.#src, this.#srcSize, srcNeed);
    this.#srcSize = Math.max(this.#srcSize, srcNeed);
    this.#dst = this.#region(this.#dst, this.#dstSize, dstNeed);
    this.#dstSize = Math.max(this.#dstSize, dstNeed);
    // HEAPU8 is replaced when memory grows: read it after allocating.
    this.mod.HEAPU8.set(data, this.#src);
    return [this.#src, this.#dst];
  }

  output(dst: number, length: number): Uint8Array {
    return this.mod.HEAPU8.subarray(dst, dst + length);
  }
}

async function instantiate<T extends WasmModule>(factoryPath: string): Promise<T> {
  const require = createRequire(import.meta.url);
  const factory = require(factoryPath) as () => Promise<T>;
  const mod = await factory();
  await mod.ready;
  return mod;
}

let loading: Promise<Decompressors> | undefined;

async function load(): Promise<Decompressors> {
  const [zstd, lz4] = await withoutProcessHandlers(() =>
    Promise.all([
      instantiate<ZstdWasm>('@foxglove/wasm-zstd/dist/wasm-zstd.js'),
      instantiate<Lz4Wasm>('@foxglove/wasm-lz4/dist/wasm-lz4.js'),
    ]),
  );
  const zstdHeap = new HeapRegions(zstd);
  const lz4Heap = new HeapRegions(lz4);
  const lz4Context = lz4._createDecompressionContext();
  return {
    zstd: (data, size) => {
      const [src, dst] = zstdHeap.prepare(data, size);
      const n = zstd._decompress(dst, size, src, data.byteLength);
      if (n < 0) throw new Error('zstd: data does not decode');
      return zstdHeap.output(dst, n);
    },
    lz4: (data, size) => {
      const [src, dst] = lz4Heap.prepare(data, size);
      const n = lz4._decompressFrame(lz4Context, dst, size, src, data.byteLength);
      if (n < 0) throw new Error('lz4: data does not decode');
      return lz4Heap.output(dst, n);
    },
  };
}

/**
 * zstd and lz4 (frame format), the compressions MCAP writers use (spec registry). One instance per process;
 * decompression is synchronous, so scans sharing it never interleave inside a call.
 */
export function loadDecompressors(): Promise<Decompressors> {
  loading ??= load().catch((err) => {
    loading = undefined;
    throw err;
  });
  return loading;
}

/** zstd compression (the package's own wrapper), for writers of test and benchmark recordings. */
export async function loadZstdCompress(): Promise<(data: Uint8Array, level?: number) => Uint8Array> {
  const zstd = await withoutProcessHandlers(async () => {
    const pkg = createRequire(import.meta.url)('@foxglove/wasm-zstd') as ZstdPackage;
    await pkg.isLoaded;
    return pkg;
  });
  return (data, level) => zstd.compress(data, level);
}
