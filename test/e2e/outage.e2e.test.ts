import { streamMessages, waitFor, waitForEventsSettled } from '@ferry/platform/testing';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OwnedNats, OwnedPostgres } from '../support/owned-servers.js';
import { System } from '../support/system.js';

/**
 * Outages of NATS and Postgres, on servers this file owns (never the shared ones): requests during the
 * outage are answered 503 with Retry-After at once, /readyz names the dependency, everything recovers
 * without a restart, and no event is lost or duplicated.
 */
describe('outages of NATS and Postgres', () => {
  let nats: OwnedNats;
  let postgres: OwnedPostgres;
  let system: System;
  let api: ReturnType<System['client']>;
  const org = uuidv7();
  let sceneId: string;
  /** Every order the API said it created (201), in this file. */
  const created: string[] = [];

  beforeAll(async () => {
    [nats, postgres] = await Promise.all([OwnedNats.start(), OwnedPostgres.start()]);
    system = await System.create({ databaseUrl: postgres.url, natsUrl: nats.url });
    await system.start(['production', 'transfer', 'qa', 'gateway']);
    api = system.client(await system.token(org, 'operator'));
    const scene = await api('POST', '/scenes', { name: `outage-${uuidv7()}` });
    expect(scene.status).toBe(201);
    sceneId = scene.body.id;
  }, 180_000);
  afterAll(async () => {
    // A failed test may leave a server stopped; cleanup needs both.
    await Promise.allSettled([nats?.ensureRunning(), postgres?.ensureRunning()]);
    await system?.shutdown();
    await Promise.allSettled([nats?.dispose(), postgres?.dispose()]);
  });

  async function createOrder(headers: Record<string, string> = {}) {
    const started = performance.now();
    const res = await api('POST', '/orders', { scene_id: sceneId, name: `o-${uuidv7()}`, target_count: 1 }, headers);
    if (res.status === 201) created.push(res.body.id);
    return { ...res, ms: performance.now() - started };
  }

  async function readyz() {
    const res = await fetch(`${system.gatewayUrl}/readyz`);
    return { status: res.status, body: (await res.json()) as { failed: string[] } };
  }

  async function expectFastUnavailable(res: Awaited<ReturnType<typeof createOrder>>, dependency: string) {
    expect(res.status).toBe(503);
    expect(res.ms).toBeLessThan(1_000);
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(res.body).toMatchObject({ code: 'unavailable', status: 503 });
    expect(JSON.stringify(res.body)).not.toMatch(/ECONNREFUSED|terminat|pg_|sqlstate|stack/i);
    if (dependency === 'postgres') expect(res.body.details).toMatchObject({ dependency: 'postgres' });
  }

  /**
   * Each order the API created has exactly one order.created event, and no event exists for an order it
   * refused: read once the outbox is drained and the stream's last sequence has stopped moving.
   */
  async function expectEventsExactlyOnce(ids: string[]) {
    const stream = system.infra.ns.stream('PRODUCTION');
    await waitForEventsSettled({
      jsm: system.infra.jsm,
      stream,
      outboxes: [system.infra.database('production').db],
      timeoutMs: 30_000,
    });
    const events = (await streamMessages(system.infra.jsm, stream))
      .filter((m) => m.subject === system.infra.ns.subject('production.evt.order.created.v1'))
      .map((m) => m.json<{ order: { id: string } }>().order.id);
    for (const id of ids) expect(events.filter((e) => e === id)).toHaveLength(1);
    // Nothing the API refused was created behind its back.
    expect(events.filter((e) => !created.includes(e))).toEqual([]);
  }

  const linesOf = (name: 'production' | 'gateway', pattern: RegExp) =>
    system.processes.get(name)!.lines.filter((l) => pattern.test(String(l.msg)));

  it('answers 503 at once while NATS is down, names it in /readyz, and recovers without a restart', async () => {
    const before = await createOrder();
    expect(before.status).toBe(201);
    await nats.stop();
    await waitFor(async () => (await readyz()).body.failed.includes('nats'), { what: 'readyz to name nats' });
    for (let i = 0; i < 5; i++) await expectFastUnavailable(await createOrder(), 'nats');
    const list = await api('GET', '/orders');
    expect(list.status).toBe(503);

    await nats.restart();
    await waitFor(async () => (await readyz()).status === 200, { timeoutMs: 30_000, what: 'readyz 200 again' });
    const after = await createOrder();
    expect(after.status).toBe(201);
    await expectEventsExactlyOnce([before.body.id, after.body.id]);
    // One warning when it went away and one when it came back, not one per request.
    expect(linesOf('gateway', /^nats is unavailable/)).toHaveLength(1);
    expect(linesOf('gateway', /^nats is available again/)).toHaveLength(1);
  });

  it('answers 503 at once while Postgres is down (services and the idempotency store), and recovers', async () => {
    const before = await createOrder();
    expect(before.status).toBe(201);
    await postgres.stop();
    await waitFor(async () => (await readyz()).body.failed.includes('postgres'), { what: 'readyz to name postgres' });
    for (let i = 0; i < 5; i++) await expectFastUnavailable(await createOrder(), 'postgres');
    // With an Idempotency-Key the gateway's own store is the first thing to fail.
    await expectFastUnavailable(await createOrder({ 'idempotency-key': uuidv7() }), 'postgres');

    await postgres.restart();
    await waitFor(async () => (await readyz()).status === 200, { timeoutMs: 30_000, what: 'readyz 200 again' });
    const after = [await createOrder(), await createOrder({ 'idempotency-key': uuidv7() })];
    expect(after.map((r) => r.status)).toEqual([201, 201]);
    await expectEventsExactlyOnce([before.body.id, ...after.map((r) => r.body.id)]);

    const errors = system.processes.get('production')!.lines.filter((l) => l.level === 'error');
    expect(errors).toEqual([]);
    expect(linesOf('production', /^postgres is unavailable/)).toHaveLength(1);
    expect(linesOf('production', /^postgres is available again/)).toHaveLength(1);
    expect(system.processes.get('gateway')!.lines.filter((l) => l.level === 'error')).toEqual([]);
  });
});
