import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { BulkRun } from '@ferry/contracts';
import { connectNats } from '@ferry/platform';
import { silentLogger } from '@ferry/platform/testing';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, it } from 'vitest';
import { FakeQaBulkRuns } from '../test/support/fake-qa-bulk-runs.js';
import { System } from '../test/support/system.js';
import { report } from './support.js';

/**
 * bench/sse-fanout: 1,000 SSE clients (in this process) follow one bulk run on one gateway (its own
 * process). Progress events carry their publish time (`updated_at`, ms); each frame's delivery latency is
 * receive time − publish time. Two phases: steady (2 events/s, the contract's throttle, for 30 s) and a
 * burst (100 events back to back). Gateway memory per client = (RSS with 1,000 streams − RSS idle) / 1,000,
 * from /proc. Baseline in the same run: the same events fanned out by NATS core to 1,000 subscriptions
 * (the transport alone). Aims: p99 ≤ 250 ms, ≤ 64 KB per client. SSE_BENCH_CLIENTS / SSE_BENCH_SECONDS override.
 */
const CLIENTS = Number(process.env.SSE_BENCH_CLIENTS ?? 1_000);
const STEADY_SECONDS = Number(process.env.SSE_BENCH_SECONDS ?? 30);
const BURST = 100;
const org = uuidv7();

let system: System;
let qa: FakeQaBulkRuns;
beforeAll(async () => {
  system = await System.create();
  await system.start(['gateway'], { env: { LOG_LEVEL: 'info' } });
  qa = new FakeQaBulkRuns(system);
}, 120_000);
afterAll(async () => {
  await qa?.stop();
  await system?.shutdown();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const rssOf = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
const UPDATED_AT = /"updated_at":"([^"]+)"/;

function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

interface Client {
  frames: number;
  req: http.ClientRequest;
}

/** One SSE client: reports each progress frame's latency; resolves once its first frame (the snapshot) arrived. */
function openClient(url: string, token: string, onLatency: (ms: number) => void): Promise<Client> {
  return new Promise((resolve, reject) => {
    const client: Client = { frames: 0, req: undefined as unknown as http.ClientRequest };
    let buffer = '';
    client.req = http.get(url, { headers: { authorization: `Bearer ${token}` }, agent: false }, (res) => {
      if (res.statusCode !== 200) reject(new Error(`HTTP ${res.statusCode}`));
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        const now = Date.now();
        buffer += chunk;
        let end = buffer.indexOf('\n\n');
        while (end >= 0) {
          const frame = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          if (frame.startsWith('event: bulk_run_')) {
            client.frames++;
            if (client.frames === 1) resolve(client);
            else {
              const at = UPDATED_AT.exec(frame)?.[1];
              if (at) onLatency(now - Date.parse(at));
            }
          }
          end = buffer.indexOf('\n\n');
        }
      });
    });
    client.req.on('error', reject);
  });
}

/** 2/s for STEADY_SECONDS, then BURST back to back; `send` publishes one event stamped with now. */
async function drive(send: (i: number) => Promise<void>, phase: { name: string }): Promise<void> {
  phase.name = 'steady';
  for (let i = 0; i < STEADY_SECONDS * 2; i++) {
    const t = Date.now();
    await send(i);
    await sleep(Math.max(0, 500 - (Date.now() - t)));
  }
  await sleep(1_000);
  phase.name = 'burst';
  for (let i = 0; i < BURST; i++) await send(STEADY_SECONDS * 2 + i);
}

/** Waits (at most 60 s) until `done()`; the bench reports what arrived either way. */
async function settle(done: () => boolean): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (!done() && Date.now() < deadline) await sleep(100);
}

it('fans one run out to 1,000 SSE clients', async () => {
  const gateway = system.processes.get('gateway')!;
  const token = await system.token(org, 'viewer');
  const run = qa.create(org, { total_count: 1_000_000 });
  const url = `${system.gatewayUrl}/api/v1/data-ops/bulk-runs/${run.run_id}/events`;

  // Warm up (JIT, pools), then idle memory with no stream open.
  const warmClients = await Promise.all(Array.from({ length: 50 }, () => openClient(url, token, () => undefined)));
  for (const c of warmClients) c.req.destroy();
  await sleep(3_000);
  const idleRss = rssOf(gateway.child.pid!);

  // SSE fan-out.
  const sse = { steady: [] as number[], burst: [] as number[] };
  const phase = { name: 'steady' };
  const record = (ms: number) => (phase.name === 'steady' ? sse.steady : sse.burst).push(ms);
  const connectStarted = performance.now();
  const clients: Client[] = [];
  for (let i = 0; i < CLIENTS; i += 50) {
    clients.push(
      ...(await Promise.all(Array.from({ length: Math.min(50, CLIENTS - i) }, () => openClient(url, token, record)))),
    );
  }
  const connectSeconds = (performance.now() - connectStarted) / 1000;
  await sleep(3_000);
  const connectedRss = rssOf(gateway.child.pid!);
  let peakRss = connectedRss;
  const sampler = setInterval(() => {
    peakRss = Math.max(peakRss, rssOf(gateway.child.pid!));
  }, 100);
  let version = run.version;
  await drive(async () => {
    version++;
    const now = new Date().toISOString();
    qa.runs.set(run.run_id, { ...qa.runs.get(run.run_id)!, version, updated_at: now });
    await qa.publish('progress', { ...qa.runs.get(run.run_id)!, processed_count: version } as BulkRun);
  }, phase);
  const total = STEADY_SECONDS * 2 + BURST;
  await settle(() => clients.every((c) => c.frames - 1 >= total));
  clearInterval(sampler);
  const framesPerClient = clients.map((c) => c.frames - 1);
  for (const c of clients) c.req.destroy();

  // Baseline: the same events through NATS core to as many subscriptions (no JetStream, no HTTP).
  const base = { steady: [] as number[], burst: [] as number[] };
  const nc = await connectNats({ servers: system.infra.natsUrl, name: 'bench-fanout', logger: silentLogger() });
  const subject = `${system.infra.ns.prefix}.bench.fanout`;
  for (let i = 0; i < CLIENTS; i++) {
    nc.subscribe(subject, {
      callback: (_err, msg) => {
        const now = Date.now();
        const at = UPDATED_AT.exec(msg.string())?.[1];
        if (at) (phase.name === 'steady' ? base.steady : base.burst).push(now - Date.parse(at));
      },
    });
  }
  await nc.flush();
  const template = qa.runs.get(run.run_id)!;
  await drive(async (i) => {
    nc.publish(subject, JSON.stringify({ run: { ...template, version: i, updated_at: new Date().toISOString() } }));
  }, phase);
  await settle(() => base.steady.length + base.burst.length >= total * CLIENTS);
  await nc.close();

  const stats = (xs: number[]) => ({ frames: xs.length, p50_ms: percentile(xs, 50), p99_ms: percentile(xs, 99) });
  const perClient = (connectedRss - idleRss) / CLIENTS;
  const ssePct = { steady: stats(sse.steady), burst: stats(sse.burst) };
  const basePct = { steady: stats(base.steady), burst: stats(base.burst) };
  report('sse-fanout', {
    clients: CLIENTS,
    events: { steady: STEADY_SECONDS * 2, burst: BURST },
    connect_seconds: Number(connectSeconds.toFixed(2)),
    sse: ssePct,
    nats_core_baseline: basePct,
    frames_per_client: { min: Math.min(...framesPerClient), max: Math.max(...framesPerClient) },
    gateway_rss_mb: {
      idle: Math.round(idleRss / 2 ** 20),
      connected: Math.round(connectedRss / 2 ** 20),
      peak_during_events: Math.round(peakRss / 2 ** 20),
    },
    gateway_kb_per_client: Math.round(perClient / 1024),
    ratios: {
      steady_p99_to_aim_250ms: Number((ssePct.steady.p99_ms / 250).toFixed(2)),
      burst_p99_to_aim_250ms: Number((ssePct.burst.p99_ms / 250).toFixed(2)),
      kb_per_client_to_aim_64kb: Number((perClient / 1024 / 64).toFixed(2)),
      steady_p99_to_nats_core_p99: Number((ssePct.steady.p99_ms / Math.max(1, basePct.steady.p99_ms)).toFixed(1)),
      burst_p99_to_nats_core_p99: Number((ssePct.burst.p99_ms / Math.max(1, basePct.burst.p99_ms)).toFixed(1)),
    },
  });
});
