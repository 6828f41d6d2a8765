import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

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
