import { describe, expect, it } from 'vitest';
import { QA_CHECKS, QA_SUITE_VERSION, runQaSuite } from './qa-suite.js';
import { type CorpusEntry, defectCorpus, expectedOf, goodCorpus, streamOf } from './testing/mcap-corpus.js';

const good = await goodCorpus();
const defects = await defectCorpus();
const byName = (list: CorpusEntry[]) => list.map((e) => [e.name, e] as const);

function run(entry: CorpusEntry, options: { pieceBytes?: number; digest?: 'worker' | 'inline' } = {}) {
  return runQaSuite({
    open: async () => streamOf(entry.bytes, options.pieceBytes ?? 4096),
    expected: expectedOf(entry.bytes),
    recording: entry.recording ?? null,
    profile: entry.profile ?? null,
    scan: { digest: options.digest ?? 'inline' },
  });
}

describe('good recordings', () => {
  it.each(byName(good))('%s passes every check', async (_name, entry) => {
    const suite = await run(entry);
    expect(suite.results.map((r) => [r.name, r.status])).toEqual(QA_CHECKS.map((c) => [c.name, 'passed']));
    expect(suite.passed).toBe(true);
    expect(suite.score).toBe(1);
    expect(suite.suite_version).toBe(QA_SUITE_VERSION);
    expect(suite.metrics.bytes).toBe(entry.bytes.length);
  });

  it('reports the same results whatever the piece size and wherever the digest runs', async () => {
    const entry = good.find((e) => e.name === 'good: chunked, zstd')!;
    const strip = (s: Awaited<ReturnType<typeof run>>) => s.results;
    const reference = strip(await run(entry, { pieceBytes: entry.bytes.length }));
    for (const pieceBytes of [1, 7, 9, 4096, 65536]) {
      expect(strip(await run(entry, { pieceBytes }))).toEqual(reference);
    }
    expect(strip(await run(entry, { pieceBytes: 1000, digest: 'worker' }))).toEqual(reference);
  });

  it('names the writer, chunk layout and CRCs checked in the integrity metrics', async () => {
    const suite = await run(good.find((e) => e.name === 'good: chunked, lz4')!);
    const integrity = suite.results.find((r) => r.name === 'mcap_integrity')!;
    expect(integrity.details).toBe('MCAP valid: 10 chunks, 3 channels, 323 messages');
    expect(integrity.metrics).toMatchObject({
      errors: 0,
      library: 'ferry-qa-corpus',
      compression: { lz4: 10 },
      crc: { dataSection: 'ok', summary: 'ok', chunksChecked: 10, chunksWithoutCrc: 0 },
    });
  });
});

describe('damaged and inconsistent recordings', () => {
  it.each(byName(defects))('%s is caught by the right check, naming the place', async (_name, entry) => {
    const suite = await run(entry);
    const result = suite.results.find((r) => r.name === entry.caughtBy!.check)!;
    expect(result.status).toBe('failed');
    expect(result.passed).toBe(false);
    for (const text of entry.caughtBy!.details) expect(result.details).toContain(text);
    expect(suite.passed).toBe(false);
    // The bytes are the upload's: transport is not to blame.
    expect(suite.results.find((r) => r.name === 'transport')!.status).toBe('passed');
  });

  it('quotes the first three errors and counts the rest', async () => {
    const entry = defects.find((e) => e.name === 'damaged zstd chunk, intact summary')!;
    const integrity = (await run(entry)).results.find((r) => r.name === 'mcap_integrity')!;
    expect(integrity.details).toMatch(
      /^MCAP integrity: \d+ errors: chunk 1 \(offset \d+\) [^;]+; [^;]+; [^;]+; and \d+ more$/,
    );
  });

  it('keeps reading after a damaged chunk: later chunks and the summary are still checked', async () => {
    const entry = defects.find((e) => e.name === 'damaged chunk, intact summary')!;
    const integrity = (await run(entry)).results.find((r) => r.name === 'mcap_integrity')!;
    expect(integrity.metrics).toMatchObject({
      errors: 1,
      crc: { dataSection: 'ok', summary: 'ok', chunksChecked: 10 },
    });
  });
});

describe('transport', () => {
  const entry = good[0]!;

  it('fails when the object is missing and skips every check that needs its bytes', async () => {
    const suite = await runQaSuite({
      open: async () => null,
      expected: expectedOf(entry.bytes),
      recording: entry.recording,
    });
    expect(suite.results.map((r) => [r.name, r.status, r.details])).toEqual([
      ['transport', 'failed', 'object not found'],
      ['mcap_integrity', 'skipped', 'no object to read'],
      ['not_empty', 'skipped', 'no object to read'],
      ['log_time_order', 'skipped', 'no object to read'],
      ['sidecar_consistency', 'skipped', 'no object to read'],
      ['profile', 'skipped', 'no profile configured'],
    ]);
    expect(suite.passed).toBe(false);
    expect(suite.score).toBe(0);
  });

  it('fails on a size or sha256 different from the upload, quoting both', async () => {
    const declared = { size_bytes: entry.bytes.length + 1, sha256: 'ab'.repeat(32) };
    const suite = await runQaSuite({ open: async () => streamOf(entry.bytes), expected: declared });
    const transport = suite.results[0]!;
    expect(transport.status).toBe('failed');
    expect(transport.details).toBe(
      `size mismatch: expected ${declared.size_bytes} bytes, found ${entry.bytes.length}; ` +
        `sha256 mismatch: expected ${declared.sha256}, found ${expectedOf(entry.bytes).sha256}`,
    );
  });

  it('passes with the size and digest in its details and metrics', async () => {
    const suite = await runQaSuite({ open: async () => streamOf(entry.bytes), expected: expectedOf(entry.bytes) });
    expect(suite.results[0]).toMatchObject({
      status: 'passed',
      details: `object present: ${entry.bytes.length} bytes, sha256 matches the upload`,
      metrics: { size_bytes: entry.bytes.length, sha256: expectedOf(entry.bytes).sha256 },
    });
  });
});

describe('an empty object', () => {
  it('fails integrity and not_empty, not transport, when the upload itself was 0 bytes', async () => {
    const empty = new Uint8Array(0);
    const suite = await runQaSuite({ open: async () => streamOf(empty), expected: expectedOf(empty) });
    expect(suite.results.slice(0, 3).map((r) => [r.name, r.status, r.details])).toEqual([
      ['transport', 'passed', 'object present: 0 bytes, sha256 matches the upload'],
      ['mcap_integrity', 'failed', 'MCAP integrity: 1 error: file is 0 bytes, too short for the MCAP magic'],
      ['not_empty', 'failed', 'recording has no channels'],
    ]);
  });
});

describe('storage errors are not QA failures', () => {
  const entry = good[0]!;

  it('rejects with the error when the stream fails mid-way (no result to persist)', async () => {
    const failure = new Error('connection reset by the object store');
    async function* failing() {
      yield entry.bytes.subarray(0, 10_000);
      throw failure;
    }
    await expect(runQaSuite({ open: async () => failing(), expected: expectedOf(entry.bytes) })).rejects.toBe(failure);
  });

  it('rejects with the error when the stream fails mid-way with the digest on a worker', async () => {
    const failure = new Error('socket hang up');
    async function* failing() {
      yield entry.bytes.subarray(0, 10_000);
      throw failure;
    }
    const run = runQaSuite({
      open: async () => failing(),
      expected: expectedOf(entry.bytes),
      scan: { digest: 'worker' },
    });
    await expect(run).rejects.toBe(failure);
  });

  it('rejects with the error when open() throws', async () => {
    const failure = Object.assign(new Error('AccessDenied'), { code: 'access_denied' });
    await expect(
      runQaSuite({
        open: async () => {
          throw failure;
        },
        expected: expectedOf(entry.bytes),
      }),
    ).rejects.toBe(failure);
  });
});

describe('optional checks', () => {
  it('skips sidecar_consistency and profile (neither passed nor failed) when there is no sidecar or profile', async () => {
    const entry = good[0]!;
    const suite = await runQaSuite({ open: async () => streamOf(entry.bytes), expected: expectedOf(entry.bytes) });
    const optional = suite.results.filter((r) => r.status === 'skipped');
    expect(optional.map((r) => [r.name, r.passed, r.score, r.details])).toEqual([
      ['sidecar_consistency', false, 0, 'no sidecar metadata'],
      ['profile', false, 0, 'no profile configured'],
    ]);
    expect(suite.passed).toBe(true);
    expect(suite.score).toBe(1);
  });
});

describe('long runs', () => {
  const entry = good[0]!;

  it('reports progress while reading', async () => {
    const seen: number[] = [];
    await runQaSuite({
      open: async () => streamOf(entry.bytes, 1000),
      expected: expectedOf(entry.bytes),
      onProgress: (p) => seen.push(p.bytesRead),
      scan: { progressIntervalMs: 0 },
    });
    expect(seen.length).toBeGreaterThan(10);
    expect(seen).toEqual([...seen].sort((a, b) => a - b));
    expect(seen.at(-1)).toBe(entry.bytes.length);
  });

  it('rejects with the abort reason when the signal fires mid-way', async () => {
    const controller = new AbortController();
    const reason = new Error('lease lost');
    const run = runQaSuite({
      open: async () => streamOf(entry.bytes, 1000),
      expected: expectedOf(entry.bytes),
      signal: controller.signal,
      onProgress: (p) => {
        if (p.bytesRead >= 20_000) controller.abort(reason);
      },
      scan: { progressIntervalMs: 0 },
    });
    await expect(run).rejects.toBe(reason);
  });
});
