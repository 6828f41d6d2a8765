import { HEADERS } from '@ferry/contracts';
import { streamMessages, waitFor } from '@ferry/platform/testing';
import { sql } from 'kysely';
import { v7 as uuidv7 } from 'uuid';
import { beforeAll, describe, expect, it } from 'vitest';
import { type System, useSystem } from '../support/system.js';

/** The whole system as processes: gateway → NATS → production → Postgres → outbox → JetStream. */
describe('orders end to end', () => {
  const org = uuidv7();
  const sys = useSystem(['production', 'transfer', 'qa', 'gateway'], org);
  const { api } = sys;
  let system: System;
  beforeAll(() => {
    system = sys.get();
  });

  async function createdEvents(orderId: string) {
    const msgs = await streamMessages(system.infra.jsm, system.infra.ns.stream('PRODUCTION'));
    return msgs.filter(
      (m) =>
        m.subject === system.infra.ns.subject('production.evt.order.created.v1') &&
        m.json<{ order: { id: string } }>().order.id === orderId,
    );
  }

  let sceneId: string;
  it('is ready once every service answers', async () => {
    const res = await fetch(`${system.gatewayUrl}/readyz`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { failed: string[] }).failed).toEqual([]);
    sceneId = (await api('POST', '/scenes', { name: 'e2e-scene' })).body.id;
  });

  it('publishes exactly one order.created per created order, carrying the request id', async () => {
    const created = await api(
      'POST',
      '/orders',
      { scene_id: sceneId, name: 'e2e-one', target_count: 3 },
      { 'x-request-id': 'e2e-req-1' },
    );
    expect(created.status).toBe(201);
    const events = await waitFor(async () => {
      const e = await createdEvents(created.body.id);
      return e.length > 0 && e;
    });
    await new Promise((r) => setTimeout(r, 300)); // a duplicate would have arrived by now
    expect(await createdEvents(created.body.id)).toHaveLength(1);
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
    await waitFor(() => system.processes.get('production')!.lines.some((l) => l.request_id === requestId));
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
    await system.start(['production'], { env: { FERRY_FAULTS: 'relay.after_publish' } });
    const created = await api('POST', '/orders', { scene_id: sceneId, name: 'e2e-crash', target_count: 2 });
    expect(created.status).toBe(201);
    const exit = await system.processes.get('production')!.exited;
    expect(exit.signal).toBe('SIGKILL'); // it published, then died before marking the row
    expect(await createdEvents(created.body.id)).toHaveLength(1);
    const { db } = system.infra.database('production');
    const pending = async () =>
      (await sql<{ n: number }>`select count(*)::int as n from outbox where published_at is null`.execute(db)).rows[0]!
        .n;
    expect(await pending()).toBeGreaterThan(0);

    system.processes.delete('production');
    await system.start(['production']); // its relay republishes; JetStream answers duplicate
    await waitFor(async () => (await pending()) === 0, { what: 'outbox drained after restart' });
    expect(await createdEvents(created.body.id)).toHaveLength(1);
  });

  it('publishes exactly one event per order when two production replicas (two relays) run at once', async () => {
    const replica = await system.startReplica('production');
    const results = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        api('POST', '/orders', { scene_id: sceneId, name: `e2e-replicas-${i}`, target_count: 1 }),
      ),
    );
    expect(results.map((r) => r.status)).toEqual(Array(30).fill(201));
    // Both replicas answered RPCs, so both relays had rows to publish.
    expect(replica.lines.some((l) => l.msg === 'rpc handled' && l.subject === 'production.rpc.order.create')).toBe(
      true,
    );
    for (const r of results) {
      await waitFor(async () => (await createdEvents(r.body.id)).length > 0, { what: `event for ${r.body.name}` });
    }
    await new Promise((r) => setTimeout(r, 500));
    for (const r of results) expect(await createdEvents(r.body.id)).toHaveLength(1);
  });

  it('stops every service cleanly on SIGINT/SIGTERM', async () => {
    for (const name of ['gateway', 'production', 'transfer', 'qa'] as const) {
      const proc = system.processes.get(name)!;
      proc.child.kill(name === 'gateway' ? 'SIGINT' : 'SIGTERM');
      expect(await proc.exited).toEqual({ code: 0, signal: null });
      expect(proc.lines.at(-1)).toMatchObject({ msg: 'stopped' });
      system.processes.delete(name);
    }
  });
});
