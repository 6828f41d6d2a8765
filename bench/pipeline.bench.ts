import { createHash } from 'node:crypto';
import { loadavg } from 'node:os';
import { Readable } from 'node:stream';
import type { DeviceUploader } from '@ferry/cli';
import { sql } from 'kysely';
import { afterAll, beforeAll, it } from 'vitest';
import { type DeviceWorld, deviceWorld } from '../test/support/device-world.js';
import { Payload } from '../test/support/payload.js';
import { System } from '../test/support/system.js';
import { forEachConcurrently, median, percentile, report, UploadEventWatch } from './support.js';

/**
 * bench/pipeline (issue #7): from "the device completed its upload" to "the upload is acknowledged with
 * its episode", with small files so that bytes do not hide the machinery. Per upload: complete (HTTP →
 * transfer, outbox) → relay → transfer's verify consumer (assemble, stat, re-read and sha256 both files,
 * parse the sidecar; outbox) → relay → production's consumer (lock order, batch, task; episode; task,
 * batch and order outcome; outbox) → relay → transfer's episode-created consumer (`acknowledged`; outbox)
 * → relay → `transfer.evt.upload.acknowledged.v1`, which this process watches on NATS. Four JetStream
 * hops, three inbox transactions, four outbox rows.
 *
 * Uploads are prepared first (task started and finished by the device, upload opened, both parts PUT
 * and confirmed: a 16 KiB MCAP and a sidecar), untimed for the figures. Then, per run:
 * - latency: SEQUENTIAL uploads completed one at a time (each waits for the previous acknowledgement);
 * - throughput: BURST uploads completed 16 requests at a time, uploads/s from the first complete to the
 *   last acknowledgement, with each upload's latency under that load.
 * Baselines in the same run: the raw JetStream round trip (publish of 1 KB awaited, received by a pull
 * consumer, acked) one at a time (p50/p99), and 10,000 messages with 100 publishes in flight (msgs/s).
 *
 * BENCH_UPLOADS and BENCH_RUNS shrink it while developing (defaults 500 and 3).
 */
const BURST = Number(process.env.BENCH_UPLOADS ?? 500);
const SEQUENTIAL = Math.min(100, BURST);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const WARMUP = 20;
const COMPLETES_IN_FLIGHT = 16;
const PREPARE_IN_FLIGHT = 8;
const RAW_SEQUENTIAL = 1_000;
const RAW_BURST = 10_000;

let system: System;
beforeAll(async () => {
  system = await System.create();
  await system.start(['production', 'transfer', 'gateway'], {
    env: { LOG_LEVEL: 'info', DB_POOL_MAX: '10' },
    nodeArgs: process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean),
  });
});
afterAll(() => system?.shutdown());

const mcap = new Payload(16 * 1024, 'bench-pipeline');
const sidecar = Buffer.from(
  JSON.stringify({ recording: { duration_sec: 1.5, message_count: 12, topics_recorded: ['/cam', '/joints'] } }),
);

/** Tasks of one batch for the world's device, in an order large enough never to complete during the run. */
async function tasksFor(w: DeviceWorld, count: number): Promise<string[]> {
  const must = <T extends { status: number; body: any }>(r: T): T => {
    if (r.status !== 201) throw new Error(`expected 201, got ${r.status}: ${JSON.stringify(r.body)}`);
    return r;
  };
  const scene = must(await w.operator('POST', '/scenes', { name: 'bench-pipeline' }));
  const order = must(
    await w.operator('POST', '/orders', { scene_id: scene.body.id, name: 'bench-pipeline', target_count: count + 1 }),
  );
  const batch = must(
    await w.operator('POST', '/batches', {
      order_id: order.body.id,
      workstation_id: w.workstationId,
      task_groups: [{ group: 'g', quantity: count }],
    }),
  );
  return batch.body.tasks.map((t: { id: string }) => t.id);
}

/** Records, opens, sends and confirms both files of an upload for each task; returns the upload ids. */
async function prepare(w: DeviceWorld, uploader: DeviceUploader, taskIds: readonly string[]): Promise<string[]> {
  const files = [
    { role: 'mcap' as const, size_bytes: mcap.size, sha256: await mcap.sha256() },
    {
      role: 'sidecar' as const,
      size_bytes: sidecar.length,
      sha256: createHash('sha256').update(sidecar).digest('hex'),
    },
  ];
  const ids: string[] = new Array(taskIds.length);
  await forEachConcurrently(taskIds, PREPARE_IN_FLIGHT, async (taskId, i) => {
    await w.device.api('POST', `/tasks/${taskId}/start`, {});
    await w.device.api('POST', `/tasks/${taskId}/finish`, {});
    const opened = await uploader.open(taskId, files);
    const sent = await uploader.sendMissing(opened.body.id, {
      mcap: (start, length) => mcap.stream(start, length),
      sidecar: (start, length) => Readable.from([sidecar.subarray(start, start + length)]),
    });
    if (sent.files.some((f) => f.missing_parts.length > 0)) throw new Error(`upload ${opened.body.id} misses parts`);
    ids[i] = opened.body.id;
  });
  return ids;
}

interface Completion {
  latencyMs: number;
  completeHttpMs: number;
  toVerifiedMs: number;
  verifiedToAckMs: number;
}

async function completeAndWait(
  uploader: DeviceUploader,
  id: string,
  watch: { verified: UploadEventWatch; acknowledged: UploadEventWatch },
): Promise<Completion & { sentAt: number; ackAt: number }> {
  const sentAt = performance.now();
  const res = await uploader.complete(id);
  const completeHttpMs = performance.now() - sentAt;
  if (res.status !== 202) throw new Error(`complete of ${id} answered ${res.status}`);
  const [verifiedAt, ackAt] = await Promise.all([watch.verified.at(id), watch.acknowledged.at(id)]);
  return {
    sentAt,
    ackAt,
    latencyMs: ackAt - sentAt,
    completeHttpMs,
    toVerifiedMs: verifiedAt - sentAt,
    verifiedToAckMs: ackAt - verifiedAt,
  };
}

interface Quantiles {
  p50: number;
  p99: number;
}

/** The stages of the pipeline in the order they happen, read back from the services' own tables. */
const STAGES = [
  'complete_tx_to_completed_published',
  'completed_published_to_verify_start',
  'verify_work',
  'verified_to_verified_published',
  'verified_published_to_production_start',
  'production_tx_to_episode_created_published',
  'episode_created_published_to_ack_start',
  'ack_tx_to_acknowledged_published',
] as const;

/**
 * Where each upload's time went, from timestamps the services write anyway (one clock: the machine's):
 * outbox `created_at` (the transaction's start) and `published_at` (the relay's claim), inbox
 * `received_at` (the consumer's transaction start), `uploads.verified_at` (when hashing ended).
 * p50 and p99 per stage, in ms.
 */
async function stagesOf(uploadIds: readonly string[]): Promise<Record<(typeof STAGES)[number], Quantiles>> {
  const { db } = system.infra.database('transfer', { max: 1 });
  const t = (name: string) => sql.table(`${system.infra.schema('transfer')}.${name}`);
  const p = (name: string) => sql.table(`${system.infra.schema('production')}.${name}`);
  const ms = (x: string) => sql.raw(`extract(epoch from ${x}) * 1000`);
  const { rows } = await sql<Record<string, number>>`
    select ${ms('oc.created_at')} as complete_tx, ${ms('oc.published_at')} as completed_published,
           ${ms('iv.received_at')} as verify_start, ${ms('u.verified_at')} as verified,
           ${ms('ov.published_at')} as verified_published, ${ms('ip.received_at')} as production_start,
           ${ms('oe.published_at')} as episode_published, ${ms('ia.received_at')} as ack_start,
           ${ms('oa.published_at')} as acknowledged_published
    from ${t('uploads')} u
    join ${t('outbox')} oc on oc.event_type = 'transfer.evt.upload.completed.v1' and oc.payload->'upload'->>'id' = u.id::text
    join ${t('inbox')} iv on iv.consumer = 'transfer__verify-upload' and iv.message_id = oc.id::text
    join ${t('outbox')} ov on ov.id = u.id
    join ${p('inbox')} ip on ip.consumer = 'production__upload-verified' and ip.message_id = u.id::text
    join ${p('outbox')} oe on oe.event_type = 'production.evt.episode.created.v1' and oe.payload->'episode'->>'upload_id' = u.id::text
    join ${t('inbox')} ia on ia.consumer = 'transfer__episode-created' and ia.message_id = oe.id::text
    join ${t('outbox')} oa on oa.event_type = 'transfer.evt.upload.acknowledged.v1' and oa.payload->'upload'->>'id' = u.id::text
    where u.id = any(${[...uploadIds]}::uuid[])`.execute(db);
  if (rows.length !== uploadIds.length) throw new Error(`stages of ${rows.length} uploads of ${uploadIds.length}`);
  const points = [
    'complete_tx',
    'completed_published',
    'verify_start',
    'verified',
    'verified_published',
    'production_start',
    'episode_published',
    'ack_start',
    'acknowledged_published',
  ];
  return Object.fromEntries(
    STAGES.map((stage, i) => {
      const xs = rows.map((r) => Number(r[points[i + 1]!]) - Number(r[points[i]!]));
      return [stage, { p50: percentile(xs, 0.5), p99: percentile(xs, 0.99) }];
    }),
  ) as Record<(typeof STAGES)[number], Quantiles>;
}

/** The raw JetStream round trip on this namespace: publish (PubAck awaited) → pull consumer → ack. */
async function rawJetStream(run: number) {
  const { infra } = system;
  const stream = infra.ns.stream('TRANSFER');
  const subject = infra.ns.subject(`transfer.evt.bench.roundtrip.v1`);
  const durable = `bench_roundtrip_${run}`;
  await infra.jsm.consumers.add(stream, {
    durable_name: durable,
    filter_subject: subject,
    ack_policy: 'explicit',
    deliver_policy: 'new',
    max_ack_pending: 1_000,
  });
  const arrivals = new Map<number, number>();
  const waiters = new Map<number, () => void>();
  const messages = await (await infra.js.consumers.get(stream, durable)).consume({ max_messages: 200 });
  const consuming = (async () => {
    for await (const m of messages) {
      const i = Number(m.string().slice(0, m.string().indexOf(':')));
      arrivals.set(i, performance.now());
      waiters.get(i)?.();
      m.ack();
    }
  })();
  const arrived = (i: number) =>
    arrivals.has(i) ? Promise.resolve() : new Promise<void>((resolve) => waiters.set(i, resolve));
  const body = (i: number) => `${i}:${'x'.repeat(1_000)}`;

  const latencies: number[] = [];
  for (let i = 0; i < RAW_SEQUENTIAL; i++) {
    const t = performance.now();
    await infra.js.publish(subject, body(i), { msgID: `rt-${run}-${i}` });
    await arrived(i);
    latencies.push(arrivals.get(i)! - t);
  }
  const t0 = performance.now();
  for (let i = RAW_SEQUENTIAL; i < RAW_SEQUENTIAL + RAW_BURST; i += 100) {
    await Promise.all(
      Array.from({ length: 100 }, (_, k) => infra.js.publish(subject, body(i + k), { msgID: `rt-${run}-${i + k}` })),
    );
  }
  await arrived(RAW_SEQUENTIAL + RAW_BURST - 1);
  const burstMs = performance.now() - t0;
  await messages.close();
  await consuming;
  await infra.jsm.consumers.delete(stream, durable);
  return { latencies, msgsPerSecond: RAW_BURST / (burstMs / 1000) };
}

it('pipeline', async () => {
  const loadAtStart = loadavg()[0]!;
  const w = await deviceWorld(system, { tasks: 1 });
  const uploader = w.uploader({ concurrency: 2 });
  const watch = {
    verified: new UploadEventWatch(system.infra, 'transfer.evt.upload.verified.v1', (p) => p.upload_id),
    acknowledged: new UploadEventWatch(system.infra, 'transfer.evt.upload.acknowledged.v1', (p) => p.upload.id),
  };
  const perRun = SEQUENTIAL + BURST;
  const taskIds = await tasksFor(w, WARMUP + RUNS * perRun);

  // Warm-up: JIT, pools, consumers; not counted.
  for (const id of await prepare(w, uploader, taskIds.slice(0, WARMUP))) await completeAndWait(uploader, id, watch);

  const runs: {
    prepareMs: number;
    raw: Awaited<ReturnType<typeof rawJetStream>>;
    sequential: Completion[];
    burst: Completion[];
    burstMs: number;
    stages: Record<'sequential' | 'burst', Record<(typeof STAGES)[number], Quantiles>>;
  }[] = [];
  for (let run = 0; run < RUNS; run++) {
    const from = WARMUP + run * perRun;
    let t = performance.now();
    const ids = await prepare(w, uploader, taskIds.slice(from, from + perRun));
    const prepareMs = performance.now() - t;

    const raw = await rawJetStream(run);

    const sequential: Completion[] = [];
    for (const id of ids.slice(0, SEQUENTIAL)) sequential.push(await completeAndWait(uploader, id, watch));

    const pending: Promise<Completion & { sentAt: number; ackAt: number }>[] = [];
    t = performance.now();
    await forEachConcurrently(ids.slice(SEQUENTIAL), COMPLETES_IN_FLIGHT, async (id) => {
      // The request is answered once `verifying` commits; the next complete starts then, the wait goes on.
      const sentAt = performance.now();
      const res = await uploader.complete(id);
      if (res.status !== 202) throw new Error(`complete of ${id} answered ${res.status}`);
      const completeHttpMs = performance.now() - sentAt;
      pending.push(
        Promise.all([watch.verified.at(id), watch.acknowledged.at(id)]).then(([verifiedAt, ackAt]) => ({
          sentAt,
          ackAt,
          latencyMs: ackAt - sentAt,
          completeHttpMs,
          toVerifiedMs: verifiedAt - sentAt,
          verifiedToAckMs: ackAt - verifiedAt,
        })),
      );
    });
    const burst = await Promise.all(pending);
    const burstMs = Math.max(...burst.map((b) => b.ackAt)) - t;

    const stages = {
      sequential: await stagesOf(ids.slice(0, SEQUENTIAL)),
      burst: await stagesOf(ids.slice(SEQUENTIAL)),
    };
    runs.push({ prepareMs, raw, sequential, burst, burstMs, stages });
  }
  watch.verified.close();
  watch.acknowledged.close();

  const med = (pick: (r: (typeof runs)[number]) => number) => median(runs.map(pick));
  const q = (xs: readonly Completion[], k: keyof Completion, p: number) =>
    percentile(
      xs.map((x) => x[k]),
      p,
    );
  const seqP50 = med((r) => q(r.sequential, 'latencyMs', 0.5));
  const seqP99 = med((r) => q(r.sequential, 'latencyMs', 0.99));
  const rawP50 = med((r) => percentile(r.raw.latencies, 0.5));
  const rawP99 = med((r) => percentile(r.raw.latencies, 0.99));
  const uploadsPerSecond = med((r) => BURST / (r.burstMs / 1000));
  const rawMsgsPerSecond = med((r) => r.raw.msgsPerSecond);
  const r1 = (x: number) => Number(x.toFixed(1));
  const r2 = (x: number) => Number(x.toFixed(2));
  const breakdown = (pick: (r: (typeof runs)[number]) => Completion[]) => ({
    complete_http_ms: r1(med((r) => q(pick(r), 'completeHttpMs', 0.5))),
    complete_to_verified_ms: r1(med((r) => q(pick(r), 'toVerifiedMs', 0.5))),
    verified_to_acknowledged_ms: r1(med((r) => q(pick(r), 'verifiedToAckMs', 0.5))),
  });

  report('pipeline', {
    load_average_1m: { at_start: r1(loadAtStart), at_end: r1(loadavg()[0]!) },
    sequential_uploads: SEQUENTIAL,
    burst_uploads: BURST,
    completes_in_flight: COMPLETES_IN_FLIGHT,
    runs: RUNS,
    files: { mcap_bytes: mcap.size, sidecar_bytes: sidecar.length },
    medians: {
      latency_one_at_a_time_ms: { p50: r1(seqP50), p99: r1(seqP99) },
      raw_jetstream_round_trip_ms: { p50: r2(rawP50), p99: r2(rawP99) },
      burst_uploads_per_second: r1(uploadsPerSecond),
      raw_jetstream_msgs_per_second: Math.round(rawMsgsPerSecond),
      latency_under_burst_ms: {
        p50: Math.round(med((r) => q(r.burst, 'latencyMs', 0.5))),
        p99: Math.round(med((r) => q(r.burst, 'latencyMs', 0.99))),
      },
      prepare_uploads_per_second: r1(med((r) => perRun / (r.prepareMs / 1000))),
    },
    breakdown_p50_one_at_a_time: breakdown((r) => r.sequential),
    breakdown_p50_under_burst: breakdown((r) => r.burst),
    stages_ms: Object.fromEntries(
      STAGES.map((stage) => {
        const at = (mode: 'sequential' | 'burst', k: keyof Quantiles) => r1(med((r) => r.stages[mode][stage][k]));
        return [
          stage,
          {
            one_at_a_time: { p50: at('sequential', 'p50'), p99: at('sequential', 'p99') },
            under_burst: { p50: at('burst', 'p50'), p99: at('burst', 'p99') },
          },
        ];
      }),
    ),
    ratios: {
      latency_p50_to_raw_round_trip: r1(seqP50 / rawP50),
      latency_p99_to_raw_round_trip: r1(seqP99 / rawP99),
      raw_msgs_per_second_to_uploads_per_second: r1(rawMsgsPerSecond / uploadsPerSecond),
    },
    all_runs: runs.map((r) => ({
      latency_one_at_a_time_ms: {
        p50: r1(q(r.sequential, 'latencyMs', 0.5)),
        p99: r1(q(r.sequential, 'latencyMs', 0.99)),
        max: r1(Math.max(...r.sequential.map((s) => s.latencyMs))),
      },
      raw_round_trip_ms: { p50: r2(percentile(r.raw.latencies, 0.5)), p99: r2(percentile(r.raw.latencies, 0.99)) },
      burst_uploads_per_second: r1(BURST / (r.burstMs / 1000)),
      raw_msgs_per_second: Math.round(r.raw.msgsPerSecond),
    })),
  });
});
