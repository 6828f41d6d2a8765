import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os, { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, it } from 'vitest';
import { type QaSuiteResult, runQaSuite } from '../services/qa/src/checks/index.js';
import { type LargeMcapOptions, writeLargeMcap } from '../services/qa/src/checks/testing/large-mcap.js';
import { median, report, timeIt } from './support.js';

/**
 * bench/qa-throughput: the whole QA suite (one streaming pass: sha256, data-section CRC, every chunk zstd-decoded
 * and CRC-checked, every record parsed, all cross-checks) over a 1 GB zstd-chunked recording read from disk,
 * against the floor for touching every byte once: a plain streaming sha256 of the same file, in the same run.
 * Two recordings (testing/large-mcap.ts): `camera` (already-compressed frames: zstd stores them raw) and
 * `camera+depth` (adds raw 16-bit depth: entropy-coded blocks, the slow case for zstd decoding).
 * Aims: suite ≤ 2 × sha256; peak RSS during the suite ≤ 256 MB. QA_BENCH_BYTES / QA_BENCH_RUNS override.
 */
const BYTES = Number(process.env.QA_BENCH_BYTES ?? 1_000_000_000);
const RUNS = Number(process.env.QA_BENCH_RUNS ?? 3);
const READ_CHUNK = 1 << 20;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'qa-bench-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

async function sha256OfFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const piece of createReadStream(file, { highWaterMark: READ_CHUNK })) hash.update(piece as Buffer);
  return hash.digest('hex');
}

/** Samples RSS every 10 ms while `fn` runs; returns the peak. */
async function peakRss<T>(fn: () => Promise<T>): Promise<{ value: T; peak: number }> {
  let peak = process.memoryUsage().rss;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 10);
  try {
    const value = await fn();
    return { value, peak: Math.max(peak, process.memoryUsage().rss) };
  } finally {
    clearInterval(timer);
  }
}

async function measure(content: LargeMcapOptions['content']) {
  const file = path.join(dir, `${content}.mcap`);
  const written = await writeLargeMcap(file, { bytes: BYTES, compression: 'zstd', content });
  const sha256 = await sha256OfFile(file);
  const expected = { size_bytes: written.bytes, sha256 };
  const open = async () => createReadStream(file, { highWaterMark: READ_CHUNK });

  const shaRuns = await timeIt(RUNS, async () => {
    await sha256OfFile(file);
  });
  const suite = async (digest: 'worker' | 'inline') => {
    const peaks: number[] = [];
    let last: QaSuiteResult | undefined;
    const runs = await timeIt(RUNS, async () => {
      const { value, peak } = await peakRss(() => runQaSuite({ open, expected, scan: { digest } }));
      if (!value.passed) throw new Error(`suite failed on the generated file: ${JSON.stringify(value.results)}`);
      peaks.push(peak);
      last = value;
    });
    return { runs, peaks, last: last! };
  };
  const worker = await suite('worker');
  const inline = await suite('inline');
  await rm(file);

  const mb = written.bytes / 1e6;
  const mbps = (ms: number) => Math.round(mb / (ms / 1e3));
  const ratio = (xs: number[]) => Number((median(xs) / median(shaRuns)).toFixed(2));
  const integrity = worker.last.results.find((r) => r.name === 'mcap_integrity')!;
  return {
    file: {
      content,
      bytes: written.bytes,
      messages: written.messages,
      duration_sec: written.durationSec,
      chunks: integrity.metrics.chunks,
      uncompressed_bytes: integrity.metrics.uncompressed_bytes,
    },
    median_ms: {
      sha256_baseline: Math.round(median(shaRuns)),
      suite_worker_digest: Math.round(median(worker.runs)),
      suite_inline_digest: Math.round(median(inline.runs)),
    },
    mb_per_s: {
      sha256_baseline: mbps(median(shaRuns)),
      suite_worker_digest: mbps(median(worker.runs)),
      suite_inline_digest: mbps(median(inline.runs)),
    },
    ratio_to_sha256: { suite_worker_digest: ratio(worker.runs), suite_inline_digest: ratio(inline.runs) },
    peak_rss_mb: {
      suite_worker_digest: Math.round(Math.max(...worker.peaks) / 2 ** 20),
      suite_inline_digest: Math.round(Math.max(...inline.peaks) / 2 ** 20),
    },
    aims_met: {
      ratio_at_most_2: Math.min(ratio(worker.runs), ratio(inline.runs)) <= 2,
      rss_at_most_256_mb: Math.max(...worker.peaks, ...inline.peaks) <= 256 * 2 ** 20,
    },
    all_runs_ms: {
      sha256: shaRuns.map(Math.round),
      suite_worker: worker.runs.map(Math.round),
      suite_inline: inline.runs.map(Math.round),
    },
  };
}

it('qa-throughput', async () => {
  const camera = await measure('camera');
  const depth = await measure('camera+depth');
  report('qa-throughput', { runs: RUNS, load_average: os.loadavg().map((x) => Number(x.toFixed(1))), camera, depth });
});
