import { sql } from 'kysely';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, it } from 'vitest';
import { json } from '../test/support/http.js';
import { System } from '../test/support/system.js';
import { median, report, timeIt } from './support.js';

/**
 * bench/bulk-tasks: 10,000 tasks with external_ids through the gateway — HTTP → NATS (chunked) →
 * production → one Postgres transaction writing 10,000 tasks and 10,000 task.created outbox rows →
 * reply with every task. Compared with a raw 10,000-row INSERT of the same columns in the same run.
 * Aim (issue #3): under 1 s. Also: how long the relay takes to publish those 10,000 events, compared
 * with a raw JetStream publish of 10,000 messages (100 in flight) in the same run.
 */
const N = 10_000;
const RUNS = 5;

let system: System;
beforeAll(async () => {
  system = await System.create();
  await system.start(['production', 'gateway'], { env: { LOG_LEVEL: 'info', DB_POOL_MAX: '10' } });
});
afterAll(() => system?.shutdown());

it('bulk-tasks', async () => {
  const token = await system.token(uuidv7(), 'operator');
  const api = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${system.gatewayUrl}/api/v1${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (res.status >= 300) throw new Error(`${method} ${path} → ${res.status} ${await res.text()}`);
    return json(res);
  };
  const { db } = system.infra.database('production');
  const backlog = async () =>
    (await sql<{ n: number }>`select count(*)::int as n from outbox where published_at is null`.execute(db)).rows[0]!.n;
  const drained = async () => {
    const t = performance.now();
    while ((await backlog()) > 0) await new Promise((r) => setTimeout(r, 20));
    return performance.now() - t;
  };

  const scene = await api('POST', '/scenes', { name: 'bench' });
  const ws = await api('POST', '/workstations', { device_id: 'bench-arm', collector_operator_id: 'bench-op' });
  const orders: string[] = [];
  for (let i = 0; i <= RUNS; i++) {
    orders.push((await api('POST', '/orders', { scene_id: scene.id, name: `bench-${i}`, target_count: N })).id);
  }
  const items = Array.from({ length: N }, (_, i) => ({ workstation_id: ws.id, external_id: `ext-${i}` }));

  // Baseline 1: the same 10,000 rows inserted raw, in one statement, in the same database.
  await sql`create table bench_raw (like tasks including defaults)`.execute(db);
  const rawInsert = await timeIt(RUNS, async () => {
    const ids = Array.from({ length: N }, () => uuidv7());
    const one = uuidv7();
    await sql`insert into bench_raw (id, organization_id, order_id, batch_id, workstation_id, scene_id, external_id, metadata)
      select id, ${one}::uuid, ${one}::uuid, ${one}::uuid, ${one}::uuid, ${one}::uuid, 'ext-' || n, '{}'::jsonb
      from unnest(${ids}::uuid[]) with ordinality as t(id, n)`.execute(db);
  });

  // Baseline 2: 10,000 JetStream publishes of 700-byte messages, 100 in flight, with dedup ids.
  const subject = system.infra.ns.subject('production.evt.bench.raw.v1');
  const body = 'x'.repeat(700);
  const rawPublish = await timeIt(3, async (run) => {
    for (let i = 0; i < N; i += 100) {
      await Promise.all(
        Array.from({ length: 100 }, (_, k) => system.infra.js.publish(subject, body, { msgID: `raw-${run}-${i + k}` })),
      );
    }
  });

  let summary: unknown;
  const relayDrain: number[] = [];
  const gateway: number[] = [];
  for (let i = 0; i <= RUNS; i++) {
    // Each run starts with the previous run's 10,000 events published, and times their drain after.
    await drained();
    const t = performance.now();
    const result = await api('POST', `/orders/${orders[i]}/tasks:bulk`, { items });
    if (i > 0) gateway.push(performance.now() - t); // run 0 warms up
    summary = result.summary;
    const drain = await drained();
    if (i > 0) relayDrain.push(drain);
  }

  const repeat = await timeIt(
    3,
    async () => {
      await api('POST', `/orders/${orders[0]}/tasks:bulk`, { items });
    },
    0,
  );

  const ms = (xs: number[]) => Math.round(median(xs));
  report('bulk-tasks', {
    items: N,
    runs: RUNS,
    last_summary: summary,
    median_ms: {
      gateway_bulk_create: ms(gateway),
      raw_insert_baseline: ms(rawInsert),
      gateway_bulk_repeat_all_duplicates: ms(repeat),
      relay_publish_10k_events: ms(relayDrain),
      raw_jetstream_publish_10k: ms(rawPublish),
    },
    ratios: {
      bulk_create_to_raw_insert: Number((median(gateway) / median(rawInsert)).toFixed(1)),
      relay_drain_to_raw_publish: Number((median(relayDrain) / median(rawPublish)).toFixed(1)),
    },
    under_one_second: median(gateway) < 1_000,
    all_runs_ms: {
      gateway: gateway.map(Math.round),
      raw_insert: rawInsert.map(Math.round),
      repeat: repeat.map(Math.round),
    },
  });
});
