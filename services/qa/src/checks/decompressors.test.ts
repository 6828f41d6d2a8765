import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadDecompressors, withoutProcessHandlers } from './decompressors.js';

const EVENTS = ['uncaughtException', 'unhandledRejection'] as const;
const counts = () => EVENTS.map((e) => process.listenerCount(e));

describe('loading the wasm decompressors', () => {
  it('leaves the process uncaughtException / unhandledRejection listeners as they were', async () => {
    const before = counts();
    await loadDecompressors();
    expect(counts()).toEqual(before);
  });

  it('removes any such listener a module installs while loading, and keeps the caller’s own', async () => {
    const mine = () => {};
    process.on('uncaughtException', mine);
    try {
      const before = counts();
      const value = await withoutProcessHandlers(async () => {
        process.on('uncaughtException', (err) => {
          throw err;
        });
        process.on('unhandledRejection', () => {});
        return 42;
      });
      expect(value).toBe(42);
      expect(counts()).toEqual(before);
      expect(process.listeners('uncaughtException')).toContain(mine);
    } finally {
      process.off('uncaughtException', mine);
    }
  });

  it('an unrelated uncaught error still ends the process normally once they are loaded', () => {
    // The built module (global setup runs tsc -b), in a process of its own.
    const built = path.resolve(import.meta.dirname, '../../dist/checks/decompressors.js');
    const script = `
      const { loadDecompressors } = await import(${JSON.stringify(built)});
      await loadDecompressors();
      setTimeout(() => { throw new Error('unrelated failure 7f3a'); }, 0);
    `;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(child.status).toBe(1);
    expect(child.stderr.match(/Error: unrelated failure 7f3a/g)).toHaveLength(1);
    expect(child.stderr).not.toMatch(/Aborted|RuntimeError|exiting due to exception/);
  });

  it('decodes zstd and rejects garbage without breaking later calls', async () => {
    const { zstd } = await loadDecompressors();
    expect(() => zstd!(new TextEncoder().encode('not zstd at all'), 100)).toThrow('zstd: data does not decode');
    const { loadZstdCompress } = await import('./decompressors.js');
    const data = new TextEncoder().encode('imu '.repeat(5000));
    const packed = (await loadZstdCompress())(data);
    expect(Buffer.from(zstd!(packed, data.length))).toEqual(Buffer.from(data));
  });
});
