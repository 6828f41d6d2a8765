// The device of bench/upload-ingest, in a process of its own as on a robot: from the benchmark's own process
// (vitest, the TypeScript sources, the services' logs) the same code sent about a third slower and hashed about
// half as fast as from a plain Node process, so it measured the harness. Plain JavaScript, run by node itself.
//
// Configured by FERRY_BENCH_* variables (prefixed: vitest's environment already holds a BASE_URL).
// FERRY_BENCH_MODE=upload: open the upload for _TASK_ID at _BASE_URL with _TOKEN (declaring _SIZE and
// _SHA256), PUT every part (_PART_SIZE, _CONCURRENCY at a time) and confirm it, complete; prints
// {upload_id, started_at, ingested_at, completed_at}.
// FERRY_BENCH_MODE=sink: PUT the same parts to _SINK_URL/<n>; prints {started_at, ingested_at}.
// Times are epoch milliseconds with sub-millisecond precision (performance.timeOrigin + now()).
import { createCipheriv, createHash } from 'node:crypto';
import { Readable } from 'node:stream';
// The uploader itself, not the CLI's index: that loads every command (~2.5 s, ~140 MB more RSS).
import { DeviceUploader } from '../packages/cli/dist/uploads/device-uploader.js';

const env = process.env;
const size = Number(env.FERRY_BENCH_SIZE);
const partSize = Number(env.FERRY_BENCH_PART_SIZE);
const concurrency = Number(env.FERRY_BENCH_CONCURRENCY);
const now = () => performance.timeOrigin + performance.now();

// The keystream of test/support/payload.ts (AES-128-CTR, key = sha256(seed)[0..16), counter = offset / 16).
// Should the two ever differ, the declared SHA256 (computed there) fails verification and the bench stops.
const key = createHash('sha256').update(env.FERRY_BENCH_SEED).digest().subarray(0, 16);
function bytes(start, length) {
  const iv = Buffer.alloc(16);
  iv.writeBigUInt64BE(BigInt(start / 16), 8);
  const cipher = createCipheriv('aes-128-ctr', key, iv);
  const zeros = Buffer.alloc(256 * 1024);
  let left = length;
  return new Readable({
    read() {
      if (left <= 0) return this.push(null);
      const n = Math.min(left, zeros.length);
      left -= n;
      this.push(cipher.update(zeros.subarray(0, n)));
    },
  });
}

const uploader = new DeviceUploader({
  baseUrl: env.FERRY_BENCH_BASE_URL ?? 'http://127.0.0.1',
  token: env.FERRY_BENCH_TOKEN ?? '',
  concurrency,
});
const startedAt = now();
if (env.FERRY_BENCH_MODE === 'upload') {
  const opened = await uploader.open(env.FERRY_BENCH_TASK_ID, [
    { role: 'mcap', size_bytes: size, sha256: env.FERRY_BENCH_SHA256 },
  ]);
  const sent = await uploader.sendMissing(opened.body.id, { mcap: bytes });
  const ingestedAt = now();
  if (sent.files.some((f) => f.missing_parts.length > 0)) throw new Error('parts are missing after sendMissing');
  const completedAt = now();
  const completed = await uploader.complete(opened.body.id);
  if (completed.status !== 202) throw new Error(`complete answered ${completed.status}`);
  const result = {
    upload_id: opened.body.id,
    started_at: startedAt,
    ingested_at: ingestedAt,
    completed_at: completedAt,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
} else {
  const queue = Array.from({ length: Math.ceil(size / partSize) }, (_, i) => i + 1);
  const worker = async () => {
    for (let n = queue.shift(); n !== undefined; n = queue.shift()) {
      const start = (n - 1) * partSize;
      const length = Math.min(partSize, size - start);
      const target = {
        file: 'mcap',
        part_number: n,
        size_bytes: length,
        method: 'PUT',
        url: `${env.FERRY_BENCH_SINK_URL}/${n}`,
      };
      await uploader.putPart(
        { ...target, headers: {}, expires_at: new Date(Date.now() + 3_600_000).toISOString() },
        bytes(start, length),
      );
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  process.stdout.write(`${JSON.stringify({ started_at: startedAt, ingested_at: now() })}\n`);
}
