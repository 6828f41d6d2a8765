import { HEADERS } from '@ferry/contracts';
import { streamMessages, waitFor, waitForEventsSettled } from '@ferry/platform/testing';
import { type Kysely, sql } from 'kysely';
import { v7 as uuidv7 } from 'uuid';
import { beforeAll, describe, expect, it } from 'vitest';
import { exitWithin, type ServiceProcess, type System, useSystem } from '../support/system.js';

/** The whole system as processes: gateway → NATS → production → Postgres → outbox → JetStream. */
describe('orders end to end', () => {
  const org = uuidv7();
  const sys = useSystem(['production', 'transfer', 'qa', 'gateway'], org);
  const { api } = sys;
  let system: System;
  let productionDb: Kysely<any>;
  let sceneId: string;
  beforeAll(async () => {
    system = sys.get();
    productionDb = system.infra.database('production').db;
    const scene = await api('POST', '/scenes', { name: 'e2e-scene' });
    expect(scene.status).toBe(201);
    sceneId = scene.body.id;
  });

  /** Production's outbox drained and PRODUCTION's last sequence stable: no duplicate can still arrive. */
  const eventsSettled = () =>
    waitForEventsSettled({
      jsm: system.infra.jsm,
      stream: system.infra.ns.stream('PRODUCTION'),
      outboxes: [productionDb],
    });
  const unpublished = async () =>
    (await sql<{ n: number }>`select count(*)::int as n from outbox where published_at is null`.execute(productionDb))
      .rows[0]!.n;

  async function createdEvents(orderId: string) {
    const msgs = await streamMessages(system.infra.jsm, system.infra.ns.stream('PRODUCTION'));
    return msgs.filter(
      (m) =>
        m.subject === system.infra.ns.subject('production.evt.order.created.v1') &&
        m.json<{ order: { id: string } }>().order.id === orderId,
    );
  }

  it('is ready once every service answers', async () => {
    const res = await fetch(`${system.gatewayUrl}/readyz`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { failed: string[] }).failed).toEqual([]);
  });

  it('publishes exactly one order.created per created order, carrying the request id', async () => {
    const created = await api(
      'POST',
      '/orders',
      { scene_id: sceneId, name: 'e2e-one', target_count: 3 },
      { 'x-request-id': 'e2e-req-1' },
    );
    expect(created.status).toBe(201);
    await eventsSettled();
    const events = await createdEvents(created.body.id);
    expect(events).toHaveLength(1);
    expect(events[0]!.json()).toEqual({ order: created.body });
    expect(events[0]!.header.get(HEADERS.correlationId)).toBe('e2e-req-1');
    expect(events[0]!.header.get(HEADERS.eventType)).toBe('production.evt.order.created.v1');
  });

  it('shares one request id between the gateway’s and production’s log lines', async () => {
    const requestId = `trace-${uuidv7()}`;
    const res = await api(
      'POST',
      '/orders',
      { scene_id: sceneId, name: 'e2e-traced', target_count: 1 },
      { 'x-request-id': requestId },
    );
    expect(res.headers.get('x-request-id')).toBe(requestId);
    // Log lines reach us through each child's stdout pipe, possibly after the HTTP response: wait for both.
    const logged = (name: 'gateway' | 'production', msg: string) =>
      system.processes.get(name)!.lines.some((l) => l.request_id === requestId && l.msg === msg);
    await waitFor(() => logged('gateway', 'request') && logged('production', 'rpc handled'));
    const gatewayLines = system.processes.get('gateway')!.lines.filter((l) => l.request_id === requestId);
    const productionLines = system.processes.get('production')!.lines.filter((l) => l.request_id === requestId);
    expect(gatewayLines).toContainEqual(expect.objectContaining({ msg: 'request', status: 201, service: 'gateway' }));
    expect(productionLines).toContainEqual(
      expect.objectContaining({
        msg: 'rpc handled',
        subject: 'production.rpc.order.create',
        outcome: 'ok',
        service: 'production',
      }),
    );
  });

  it('still publishes exactly one event when production dies between publish and mark, then restarts', async () => {
    await system.stop('production');
    let faulty: ServiceProcess | undefined;
    try {
      await system.start(['production'], { env: { FERRY_FAULTS: 'relay.after_publish' } });
      faulty = system.processes.get('production')!;
      const created = await api('POST', '/orders', { scene_id: sceneId, name: 'e2e-crash', target_count: 2 });
      expect(created.status).toBe(201);
      // It published, then died before marking the row (bounded: a fault that never fires fails here, not at the timeout).
      expect(await exitWithin(faulty)).toMatchObject({ signal: 'SIGKILL' });
      expect(faulty.raw.join('\n')).toMatch(/fault injected at relay\.after_publish/);
      expect(await createdEvents(created.body.id)).toHaveLength(1);
      expect(await unpublished()).toBeGreaterThan(0);

      await system.start(['production']); // its relay republishes; JetStream answers duplicate
      await eventsSettled();
      expect(await createdEvents(created.body.id)).toHaveLength(1);
    } finally {
      // Leave one healthy production for the tests after this one, whatever happened above.
      if (faulty && system.processes.get('production') === faulty) await system.stop('production', 'SIGKILL');
      if (!system.processes.has('production')) await system.start(['production']);
    }
  });

  it('publishes exactly one event per order when two production replicas (two relays) run at once', async () => {
    const primary = system.processes.get('production')!;
    const replica = await system.startReplica('production');
    try {
      const results = await Promise.all(
        Array.from({ length: 30 }, (_, i) =>
          api(
            'POST',
            '/orders',
            { scene_id: sceneId, name: `e2e-replicas-${i}`, target_count: 1 },
            { 'x-request-id': `e2e-replicas-${i}` },
          ),
        ),
      );
      expect(results.map((r) => r.status)).toEqual(Array(30).fill(201));
      // Both replicas answered some of these RPCs, so both relays had rows of them to publish.
      const answered = (p: typeof primary) =>
        p.lines.some(
          (l) =>
            l.msg === 'rpc handled' &&
            l.subject === 'production.rpc.order.create' &&
            String(l.request_id).startsWith('e2e-replicas-'),
        );
      expect(answered(primary)).toBe(true);
      expect(answered(replica)).toBe(true);
      await eventsSettled();
      for (const r of results) expect(await createdEvents(r.body.id)).toHaveLength(1);
    } finally {
      replica.child.kill('SIGTERM');
      await replica.exited;
    }
  });

  it('stops every service, a second replica included, cleanly on SIGINT/SIGTERM', async () => {
    await system.startReplica('production');
    // The gateway first, as an operator would: it stops sending work before the services drain.
    const live = system.live().sort((a, b) => Number(b.name === 'gateway') - Number(a.name === 'gateway'));
    expect(live.map((p) => p.name).sort()).toEqual(['gateway', 'production', 'production', 'qa', 'transfer']);
    for (const proc of live) {
      proc.child.kill(proc.name === 'gateway' ? 'SIGINT' : 'SIGTERM');
      expect(await proc.exited).toEqual({ code: 0, signal: null });
      expect(proc.lines.at(-1)).toMatchObject({ msg: 'stopped' });
    }
    expect(system.live()).toEqual([]);
  });
});
