import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { TestInfra } from '@ferry/platform/testing';

export interface Sample {
  name: string;
  runs: number[];
}

export const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

export async function timeIt(runs: number, fn: (i: number) => Promise<void>, warmup = 1): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn(-1 - i);
  const out: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    await fn(i);
    out.push(performance.now() - t);
  }
  return out;
}

/** Prints the result and writes bench/results/<name>.json. */
export function report(name: string, result: Record<string, unknown>): void {
  const dir = path.resolve(import.meta.dirname, 'results');
  mkdirSync(dir, { recursive: true });
  const record = { benchmark: name, at: new Date().toISOString(), node: process.version, ...result };
  writeFileSync(path.join(dir, `${name}.json`), `${JSON.stringify(record, null, 2)}\n`);
  process.stdout.write(`\n${name}\n${JSON.stringify(record, null, 2)}\n`);
}

/** The q-quantile (0..1) of `xs`, nearest rank. */
export const percentile = (xs: readonly number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
};

/** Resident set size of a process in bytes (VmRSS), or undefined once it has gone. */
export function rssOf(pid: number): number | undefined {
  try {
    const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kb === undefined ? undefined : Number(kb) * 1024;
  } catch {
    return undefined;
  }
}

/**
 * Samples the RSS of named processes every `intervalMs` (default 100) from /proc/<pid>/status until
 * stop(), which returns the peak seen per name. Linux only.
 */
export class RssSampler {
  private readonly peaks = new Map<string, number>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly pids: Record<string, number>,
    intervalMs = 100,
  ) {
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
  }

  private sample(): void {
    for (const [name, pid] of Object.entries(this.pids)) {
      const rss = rssOf(pid);
      if (rss !== undefined && rss > (this.peaks.get(name) ?? 0)) this.peaks.set(name, rss);
    }
  }

  stop(): Record<string, number> {
    clearInterval(this.timer);
    this.sample();
    return Object.fromEntries(this.peaks);
  }
}

/**
 * When each upload event arrived, by upload id: a core NATS subscription on the event's subject, so
 * the time is when the relay's publish reached us (a JetStream publish is seen by core subscribers).
 */
export class UploadEventWatch {
  private readonly seen = new Map<string, number>();
  private readonly waiters = new Map<string, (at: number) => void>();
  private readonly sub: ReturnType<TestInfra['nc']['subscribe']>;

  constructor(infra: TestInfra, type: string, uploadIdOf: (payload: any) => string) {
    this.sub = infra.nc.subscribe(infra.ns.subject(type), {
      callback: (err, msg) => {
        if (err) return;
        const at = performance.now();
        const id = uploadIdOf(msg.json());
        if (this.seen.has(id)) return; // a republish: the first arrival counts
        this.seen.set(id, at);
        this.waiters.get(id)?.(at);
        this.waiters.delete(id);
      },
    });
  }

  /** performance.now() when the event for `uploadId` arrived (waits for it, up to `timeoutMs`). */
  at(uploadId: string, timeoutMs = 300_000): Promise<number> {
    const seen = this.seen.get(uploadId);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no event for upload ${uploadId} in ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.waiters.set(uploadId, (at) => {
        clearTimeout(timer);
        resolve(at);
      });
    });
  }

  close(): void {
    this.sub.unsubscribe();
  }
}

/** Runs `fn` over `items`, `concurrency` at a time, in order of start. */
export async function forEachConcurrently<T>(
  items: readonly T[],
  concurrency: number,
  fn: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      for (let i = next++; i < items.length; i = next++) await fn(items[i]!, i);
    }),
  );
}
