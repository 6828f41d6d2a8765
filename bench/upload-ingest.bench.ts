import { execFile, spawn } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, it } from 'vitest';
import { type DeviceWorld, deviceWorld } from '../test/support/device-world.js';
import { Payload } from '../test/support/payload.js';
import { System } from '../test/support/system.js';
import { median, RssSampler, report, rssOf, UploadEventWatch } from './support.js';

/**
 * bench/upload-ingest (issue #7): one 1 GiB recording through the real stack — device client → gateway
 * PUT (streamed into the local blob store, hashed on the way, fsynced) → transfer records the part →
 * confirm → complete → transfer's consumer assembles the object and re-reads it for the whole-file
 * sha256 → `upload.verified` → production creates the episode → `episode.created` → transfer marks the
 * upload `acknowledged`. Parts of 64 MiB, 4 in flight (the defaults of the upload and the client). The
 * device is a process of its own (bench/upload-client.mjs running the real DeviceUploader), as on a robot.
 *
 * Baselines in the same run, on the same filesystem as the blob store:
 * - raw write: `dd if=/dev/zero bs=1M conv=fdatasync` of the same size (the disk alone: no JavaScript, no
 *   generator, one fdatasync at the end, as durable as the parts' fsync);
 * - raw Node HTTP: the same client process PUTting the same parts to a bare Node HTTP server (a child
 *   process) that writes each body at its offset with an fsync and does nothing else (no auth, no RPC,
 *   no hashing) — the ceiling of any Node gateway here, to tell Node's cost from ours; and the same
 *   server hashing each part on the way, as ours must (DESIGN §6);
 * - plain sha256: that dd file streamed in 1 MiB reads and hashed by a fresh Node process (what
 *   verification does, minus everything else).
 *
 * Memory (the issue's "under 200 MB per process", kept here since tests assert no timing or memory):
 * the RSS of gateway, transfer, production, the device client and this benchmark process, sampled every
 * 100 ms from /proc/<pid>/status during each upload (open → acknowledged).
 *
 * Units: MB/s and RSS in MB are 10^6 bytes; the file is 1 GiB (1,073,741,824 bytes). BENCH_UPLOAD_MIB and
 * BENCH_RUNS shrink it while developing (defaults 1024 and 3); BENCH_NODE_ARGS is passed to the services
 * (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof` to see where their time goes).
 */
const MiB = 1024 * 1024;
const SIZE = Number(process.env.BENCH_UPLOAD_MIB ?? 1024) * MiB;
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const PART_SIZE = 64 * MiB;
const CONCURRENCY = 4;
const WARMUP_SIZE = 64 * MiB;
const CLIENT = path.join(import.meta.dirname, 'upload-client.mjs');

const run = promisify(execFile);
const mbps = (bytes: number, ms: number) => bytes / 1e6 / (ms / 1000);
/** Epoch milliseconds with sub-millisecond precision: comparable across processes of this machine. */
const epoch = (at = performance.now()) => performance.timeOrigin + at;

let system: System;
beforeAll(async () => {
  system = await System.create();
  await system.start(['production', 'transfer', 'gateway'], {
    env: { LOG_LEVEL: 'info', DB_POOL_MAX: '10' },
    nodeArgs: process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean),
  });
});
afterAll(() => system?.shutdown());

interface ClientResult {
  upload_id?: string;
  started_at: number;
  ingested_at: number;
  completed_at?: number;
}

/** Starts bench/upload-client.mjs; `pid` at once (to sample it), its result when it exits. */
function startClient(env: Record<string, string>): { pid: number; result: Promise<ClientResult> } {
  const child = spawn(process.execPath, [CLIENT], {
    env: {
      ...process.env,
      FERRY_BENCH_SIZE: String(SIZE),
      FERRY_BENCH_PART_SIZE: String(PART_SIZE),
      FERRY_BENCH_CONCURRENCY: String(CONCURRENCY),
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const result = new Promise<ClientResult>((resolve, reject) => {
    child.once('exit', (code) => {
      if (code === 0) resolve(JSON.parse(out.trim().split('\n').at(-1)!) as ClientResult);
      else reject(new Error(`upload client exited ${code}: ${err}`));
    });
  });
  return { pid: child.pid!, result };
}

/**
 * A bare Node HTTP server in a child process: PUT /<n> writes the body at offset (n − 1) · part size of one
 * file, fsyncs it, answers 200 — hashing it on the way with SINK_HASH set. What any Node gateway on this
 * machine could at best do with the bytes, without and with the sha256 our gateway must compute.
 */
const RAW_SINK = `
import http from 'node:http';
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
const { SINK_FILE, SINK_PART_SIZE, SINK_HASH } = process.env;
const server = http.createServer((req, res) => {
  const n = Number(req.url.slice(1));
  const hash = createHash('sha256');
  const meter = new Transform({ transform(chunk, _encoding, done) { if (SINK_HASH) hash.update(chunk); done(null, chunk); } });
  const sink = createWriteStream(SINK_FILE, { flags: 'r+', start: (n - 1) * Number(SINK_PART_SIZE), flush: true });
  pipeline(req, meter, sink).then(() => res.end(hash.digest('hex')), (err) => { res.statusCode = 500; res.end(String(err)); });
});
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
`;

/** Ingest time of the same client and parts into RAW_SINK, hashing each part on the way or not. */
async function rawHttpIngestMs(file: string, options: { hash: boolean }): Promise<number> {
  await writeFile(file, '');
  const sink = spawn(process.execPath, ['--input-type=module', '-e', RAW_SINK], {
    env: { ...process.env, SINK_FILE: file, SINK_PART_SIZE: String(PART_SIZE), SINK_HASH: options.hash ? '1' : '' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      sink.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
      sink.once('exit', (code) => reject(new Error(`raw sink exited ${code}`)));
    });
    const { result } = startClient({
      FERRY_BENCH_MODE: 'sink',
      FERRY_BENCH_SINK_URL: `http://127.0.0.1:${port}`,
      FERRY_BENCH_SEED: 'bench',
    });
    const { started_at, ingested_at } = await result;
    return ingested_at - started_at;
  } finally {
    sink.kill();
    await rm(file, { force: true });
  }
}

/**
 * A fresh Node process streaming `file` through sha256 in 1 MiB reads: reading and hashing done well and
 * nothing else (with the default 64 KiB reads it takes ~25 % longer here).
 */
async function plainSha256Ms(file: string): Promise<number> {
  const script = `const h = require('node:crypto').createHash('sha256');
    const start = performance.now();
    require('node:fs').createReadStream(process.argv[1], { highWaterMark: 1 << 20 })
      .on('data', (c) => h.update(c))
      .on('end', () => { h.digest('hex'); console.log(performance.now() - start); });`;
  const { stdout } = await run(process.execPath, ['-e', script, file]);
  return Number(stdout.trim());
}

interface UploadTiming {
  ingestMs: number;
  verifyMs: number;
  ackAfterVerifiedMs: number;
  endToEndMs: number;
  idleRss: Record<string, number>;
  peakRss: Record<string, number>;
}

const SERVICES = ['gateway', 'transfer', 'production'] as const;

async function uploadOnce(
  w: DeviceWorld,
  taskId: string,
  payload: Payload,
  seed: string,
  sha256: string,
  watch: { verified: UploadEventWatch; acknowledged: UploadEventWatch },
): Promise<UploadTiming> {
  // The device records first; the upload starts once the task is `uploading`.
  await w.device.api('POST', `/tasks/${taskId}/start`, {});
  await w.device.api('POST', `/tasks/${taskId}/finish`, {});
  const pids: Record<string, number> = { bench: process.pid };
  for (const name of SERVICES) pids[name] = system.processes.get(name)!.child.pid!;
  const idleRss = Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, rssOf(pid) ?? 0]));
  const client = startClient({
    FERRY_BENCH_MODE: 'upload',
    FERRY_BENCH_BASE_URL: system.gatewayUrl,
    FERRY_BENCH_TOKEN: w.device.token,
    FERRY_BENCH_TASK_ID: taskId,
    FERRY_BENCH_SIZE: String(payload.size),
    FERRY_BENCH_SEED: seed,
    FERRY_BENCH_SHA256: sha256,
  });
  const sampler = new RssSampler({ ...pids, client: client.pid }, 100);
  try {
    const { upload_id, started_at, ingested_at, completed_at } = await client.result;
    const verifiedAt = epoch(await watch.verified.at(upload_id!));
    const acknowledgedAt = epoch(await watch.acknowledged.at(upload_id!));
    const done = await w.device.api('GET', `/uploads/${upload_id}?part_urls=none`);
    if (done.body.status !== 'acknowledged') throw new Error(`upload ended ${done.body.status}`);
    return {
      ingestMs: ingested_at - started_at,
      verifyMs: verifiedAt - completed_at!,
      ackAfterVerifiedMs: acknowledgedAt - verifiedAt,
      endToEndMs: acknowledgedAt - started_at,
      idleRss,
      peakRss: sampler.stop(),
    };
  } finally {
    sampler.stop();
  }
}

it('upload-ingest', async () => {
  const loadAtStart = loadavg()[0]!;
  const w = await deviceWorld(system, { tasks: RUNS + 1 });
  const watch = {
    verified: new UploadEventWatch(system.infra, 'transfer.evt.upload.verified.v1', (p) => p.upload_id),
    acknowledged: new UploadEventWatch(system.infra, 'transfer.evt.upload.acknowledged.v1', (p) => p.upload.id),
  };
  const rawDir = path.join(system.blobDir, 'bench-raw');
  await mkdir(rawDir, { recursive: true });
  const rawFile = path.join(rawDir, 'raw.bin');
  /** Everything the store holds, dropped between runs so 1 GiB objects do not pile up on disk. */
  const emptyBlobStore = () => rm(path.join(system.blobDir, 'objects'), { recursive: true, force: true });

  // Warm-up (JIT, connections, the pools): a smaller upload, not counted.
  const warm = new Payload(WARMUP_SIZE, 'bench-warmup');
  await uploadOnce(w, w.taskIds[0]!, warm, 'bench-warmup', await warm.sha256(), watch);
  await emptyBlobStore();

  const payload = new Payload(SIZE, 'bench-upload');
  const sha256 = await payload.sha256();
  const runs: (UploadTiming & {
    rawWriteMs: number;
    rawSha256Ms: number;
    rawHttpMs: number;
    rawHttpHashMs: number;
  })[] = [];
  for (let i = 0; i < RUNS; i++) {
    // Baseline: the same number of bytes written raw to the blob store's filesystem, fdatasync'ed…
    const t = performance.now();
    await run('dd', ['if=/dev/zero', `of=${rawFile}`, 'bs=1M', `count=${SIZE / MiB}`, 'conv=fdatasync']);
    const rawWriteMs = performance.now() - t;
    // …read back through a plain sha256 (fresh in the page cache, as the upload's object is)…
    const rawSha256Ms = await plainSha256Ms(rawFile);
    await rm(rawFile, { force: true });
    // …and the same client and parts into a bare Node HTTP server writing to the same filesystem.
    const rawHttpMs = await rawHttpIngestMs(rawFile, { hash: false });
    const rawHttpHashMs = await rawHttpIngestMs(rawFile, { hash: true });

    const timing = await uploadOnce(w, w.taskIds[i + 1]!, payload, 'bench-upload', sha256, watch);
    runs.push({ ...timing, rawWriteMs, rawSha256Ms, rawHttpMs, rawHttpHashMs });
    await emptyBlobStore();
  }
  watch.verified.close();
  watch.acknowledged.close();

  const med = (pick: (r: (typeof runs)[number]) => number) => median(runs.map(pick));
  const ingestMBps = med((r) => mbps(SIZE, r.ingestMs));
  const rawWriteMBps = med((r) => mbps(SIZE, r.rawWriteMs));
  const rawHttpMBps = med((r) => mbps(SIZE, r.rawHttpMs));
  const rawHttpHashMBps = med((r) => mbps(SIZE, r.rawHttpHashMs));
  const verifyMs = med((r) => r.verifyMs);
  const rawSha256Ms = med((r) => r.rawSha256Ms);
  const endToEndMs = med((r) => r.endToEndMs);
  const physicalMs = med((r) => r.rawWriteMs + r.rawSha256Ms);
  const MB = (bytes: number) => Math.round(bytes / 1e6);
  const processes = [...SERVICES, 'client', 'bench'];
  const peakRssMB = Object.fromEntries(processes.map((p) => [p, Math.max(...runs.map((r) => MB(r.peakRss[p] ?? 0)))]));
  const r1 = (x: number) => Number(x.toFixed(1));
  const r2 = (x: number) => Number(x.toFixed(2));

  report('upload-ingest', {
    // Other work on the two cores makes every figure noisier; the baselines share the noise.
    load_average_1m: { at_start: r1(loadAtStart), at_end: r1(loadavg()[0]!) },
    size_bytes: SIZE,
    part_size_bytes: PART_SIZE,
    concurrency: CONCURRENCY,
    runs: RUNS,
    medians: {
      ingest_MBps: r1(ingestMBps),
      raw_write_MBps: r1(rawWriteMBps),
      raw_node_http_MBps: r1(rawHttpMBps),
      raw_node_http_sha256_MBps: r1(rawHttpHashMBps),
      verify_ms: Math.round(verifyMs),
      raw_sha256_ms: Math.round(rawSha256Ms),
      ack_after_verified_ms: Math.round(med((r) => r.ackAfterVerifiedMs)),
      end_to_end_ms: Math.round(endToEndMs),
      raw_write_plus_sha256_ms: Math.round(physicalMs),
    },
    ratios: {
      ingest_to_raw_write: r2(ingestMBps / rawWriteMBps),
      ingest_to_raw_node_http: r2(ingestMBps / rawHttpMBps),
      ingest_to_raw_node_http_sha256: r2(ingestMBps / rawHttpHashMBps),
      verify_to_raw_sha256: r2(verifyMs / rawSha256Ms),
      end_to_end_to_raw_write_plus_sha256: r2(endToEndMs / physicalMs),
    },
    ingest_at_least_80_percent_of_raw_write: ingestMBps >= 0.8 * rawWriteMBps,
    // Before each upload (after the previous one) and the most seen during any upload.
    idle_rss_MB: Object.fromEntries(
      [...SERVICES, 'bench'].map((p) => [p, MB(median(runs.map((r) => r.idleRss[p] ?? 0)))]),
    ),
    peak_rss_MB: peakRssMB,
    every_service_and_the_client_under_200_MB: [...SERVICES, 'client'].every((p) => peakRssMB[p]! < 200),
    all_runs: runs.map((r) => ({
      ingest_MBps: r1(mbps(SIZE, r.ingestMs)),
      raw_write_MBps: r1(mbps(SIZE, r.rawWriteMs)),
      raw_node_http_MBps: r1(mbps(SIZE, r.rawHttpMs)),
      raw_node_http_sha256_MBps: r1(mbps(SIZE, r.rawHttpHashMs)),
      verify_ms: Math.round(r.verifyMs),
      raw_sha256_ms: Math.round(r.rawSha256Ms),
      ack_after_verified_ms: Math.round(r.ackAfterVerifiedMs),
      end_to_end_ms: Math.round(r.endToEndMs),
      peak_rss_MB: Object.fromEntries(Object.entries(r.peakRss).map(([k, v]) => [k, MB(v)])),
    })),
  });
});
