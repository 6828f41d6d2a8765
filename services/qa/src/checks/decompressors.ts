import { createRequire } from 'node:module';

/** Decompresses one chunk's records; throws when the data does not decode to at most `size` bytes. */
export type Decompress = (data: Uint8Array, size: number) => Uint8Array;

/** Decompressors by MCAP compression name (`""` = none is handled by the scanner). */
export type Decompressors = Readonly<Record<string, Decompress>>;

interface ZstdModule {
  isLoaded: Promise<unknown>;
  decompress(buffer: Uint8Array, size: number): Uint8Array;
  compress(buffer: Uint8Array, level?: number): Uint8Array;
}
interface Lz4Module {
  (buffer: Uint8Array, size: number): Uint8Array;
  isLoaded: Promise<unknown>;
}

const PROCESS_EVENTS = ['uncaughtException', 'unhandledRejection'] as const;

let loading: Promise<{ zstd: ZstdModule; lz4: Lz4Module }> | undefined;

/**
 * Emscripten builds of some versions install process `uncaughtException`/`unhandledRejection` handlers that
 * rethrow (stack-notes, "MCAP with @mcap/core"): loaded in a service they would change how every unrelated
 * crash is reported. So the listeners present before loading are the only ones left after it.
 */
async function loadModules(): Promise<{ zstd: ZstdModule; lz4: Lz4Module }> {
  const listeners = (event: string) => process.listeners(event as 'uncaughtException') as ((...a: unknown[]) => void)[];
  const before = new Map(PROCESS_EVENTS.map((e) => [e, new Set(listeners(e))]));
  const restore = () => {
    for (const event of PROCESS_EVENTS) {
      for (const listener of listeners(event)) {
        if (!before.get(event)!.has(listener)) process.removeListener(event, listener);
      }
    }
  };
  try {
    const require = createRequire(import.meta.url);
    const zstd = require('@foxglove/wasm-zstd') as ZstdModule;
    const lz4 = require('@foxglove/wasm-lz4') as Lz4Module;
    restore();
    await Promise.all([zstd.isLoaded, lz4.isLoaded]);
    return { zstd, lz4 };
  } finally {
    restore();
  }
}

function modules() {
  loading ??= loadModules().catch((err) => {
    loading = undefined;
    throw err;
  });
  return loading;
}

/** zstd and lz4 (frame format), the compressions MCAP writers use (spec registry). Loaded once per process. */
export async function loadDecompressors(): Promise<Decompressors> {
  const { zstd, lz4 } = await modules();
  return {
    zstd: (data, size) => zstd.decompress(data, size),
    lz4: (data, size) => lz4(data, size),
  };
}

/** zstd compression for writers of test and benchmark recordings. */
export async function loadZstdCompress(): Promise<(data: Uint8Array, level?: number) => Uint8Array> {
  const { zstd } = await modules();
  return (data, level) => zstd.compress(data, level);
}
