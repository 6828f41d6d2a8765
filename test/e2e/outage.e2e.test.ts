import { streamMessages, waitFor, waitForEventsSettled } from '@ferry/platform/testing';
import { type Kysely, sql } from 'kysely';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { OwnedNats, OwnedPostgres } from '../support/owned-servers.js';
import { System } from '../support/system.js';

/**
 * Outages of NATS and Postgres, on servers this file owns (never the shared ones): requests during the
 * outage are answered 503 with Retry-After at once, a command already in flight gets the truth (504,
 * it may still complete), /readyz names the dependency, everything recovers without a restart, every
 * service logs the outage once each way, and no event is lost or duplicated. Each test starts from a
 * ready system and reads only the log lines of its own time.
 */
describe('outages of NATS and Postgres', () => {
  let nats: OwnedNats;
  let postgres: OwnedPostgres;
  let system: System;
  let api: ReturnType<System['client']>;
  let token: string;
  let productionDb: Kysely<any>;
  const org = uuidv7();
  let sceneId: string;
  /** Every order the API said it created (201), in this file. */
  const created: string[] = [];

  beforeAll(async () => {
    [nats, postgres] = await Promise.all([OwnedNats.start(), OwnedPostgres.start()]);
    system = await System.create({ databaseUrl: postgres.url, natsUrl: nats.url });
    await system.start(['production', 'transfer', 'qa', 'gateway']);
    token = await system.token(org, 'operator');
    api = system.client(token);
    productionDb = system.infra.database('production').db;
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

  async function createOrder(
    headers: Record<string, string> = {},
    options: { name?: string; signal?: AbortSignal } = {},
  ) {
    const started = performance.now();
    const res = await fetch(`${system.gatewayUrl}/api/v1/orders`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...headers },
      body: JSON.stringify({ scene_id: sceneId, name: options.name ?? `o-${uuidv7()}`, target_count: 1 }),
      signal: options.signal,
    });
    const text = await res.text();
    const body = text ? (JSON.parse(text) as any) : undefined;
    if (res.status === 201) created.push(body.id);
    return { status: res.status, headers: res.headers, body, ms: performance.now() - started };
  }

  async function readyz() {
    const res = await fetch(`${system.gatewayUrl}/readyz`);
    return { status: res.status, body: (await res.json()) as { failed: string[] } };
  }

  /**
   * The gateway's RPC client calls to `subject` so far, by outcome (`ferry_rpc_client_calls_total`): `not_sent`
   * counts calls answered 503 because NATS was known down, with no request going out.
   */
  async function rpcCalls(subject: string): Promise<Record<string, number>> {
    const text = await (await fetch(`http://127.0.0.1:${system.processes.get('gateway')!.healthPort}/metrics`)).text();
    const out: Record<string, number> = {};
    for (const [, labels, value] of text.matchAll(/^ferry_rpc_client_calls_total\{([^}]*)\} (\S+)$/gm)) {
      if (!labels!.includes(`subject="${subject}"`)) continue;
      out[/outcome="([^"]*)"/.exec(labels!)![1]!] = Number(value);
    }
    return out;
  }
  const callsSince = (before: Record<string, number>, now: Record<string, number>) =>
    Object.fromEntries(
      Object.entries(now)
        .map(([outcome, n]) => [outcome, n - (before[outcome] ?? 0)] as const)
        .filter(([, n]) => n > 0),
    );
  const CREATE = 'production.rpc.order.create';

  async function expectFastUnavailable(res: Awaited<ReturnType<typeof createOrder>>, dependency: string) {
    expect(res.status).toBe(503);
    // The acceptance: "within a second". What makes it fast is proved by each test from the gateway's
    // RPC counters (no request went out, or the service's own answer came back), not by this bound.
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
      outboxes: [productionDb],
      timeoutMs: 30_000,
    });
    const events = (await streamMessages(system.infra.jsm, stream))
      .filter((m) => m.subject === system.infra.ns.subject('production.evt.order.created.v1'))
      .map((m) => m.json<{ order: { id: string } }>().order.id);
    for (const id of ids) expect(events.filter((e) => e === id)).toHaveLength(1);
    // Nothing the API refused was created behind its back.
    expect(events.filter((e) => !created.includes(e))).toEqual([]);
  }

  type Name = 'production' | 'transfer' | 'qa' | 'gateway';
  const NAMES: Name[] = ['production', 'transfer', 'qa', 'gateway'];

  /** From now on: the lines each service logs after this call, so a test reads only its own. */
  function logsFromNow() {
    const start = new Map(NAMES.map((n) => [n, system.processes.get(n)!.lines.length]));
    const of = (name: Name) => system.processes.get(name)!.lines.slice(start.get(name));
    return {
      matching: (name: Name, pattern: RegExp) => of(name).filter((l) => pattern.test(String(l.msg))),
      errors: (name: Name) => of(name).filter((l) => l.level === 'error' || l.level === 50 || l.level === 60),
    };
  }

  /** One warning when `dependency` went away and one when it came back, in every service, and no error. */
  async function expectOneWarningEachWay(logs: ReturnType<typeof logsFromNow>, dependency: 'nats' | 'postgres') {
    for (const name of NAMES) {
      await waitFor(() => logs.matching(name, new RegExp(`^${dependency} is available again`)).length > 0, {
        timeoutMs: 15_000,
        what: `${name} to log that ${dependency} is back`,
      });
      expect(logs.matching(name, new RegExp(`^${dependency} is unavailable`)), name).toHaveLength(1);
      expect(logs.matching(name, new RegExp(`^${dependency} is available again`)), name).toHaveLength(1);
      expect(logs.errors(name), name).toEqual([]);
    }
  }

  // Each test starts from a whole, ready system, whatever the one before it did or left stopped.
  beforeEach(async () => {
    await Promise.all([nats.ensureRunning(), postgres.ensureRunning()]);
    await waitFor(async () => (await readyz()).status === 200, { timeoutMs: 30_000, what: 'readyz 200 to start' });
  });

  it('answers 503 at once while NATS is down, names it in /readyz, and recovers without a restart', async () => {
    const before = await createOrder();
    expect(before.status).toBe(201);
    const logs = logsFromNow();
    try {
      await nats.stop();
      await waitFor(async () => (await readyz()).body.failed.includes('nats'), { what: 'readyz to name nats' });
      const calls = await rpcCalls(CREATE);
      for (let i = 0; i < 5; i++) await expectFastUnavailable(await createOrder(), 'nats');
      // Answered without waiting: the gateway knew NATS was down and sent no request at all.
      expect(callsSince(calls, await rpcCalls(CREATE))).toEqual({ not_sent: 5 });
      const list = await api('GET', '/orders');
      expect(list.status).toBe(503);
    } finally {
      await nats.restart();
    }
    await waitFor(async () => (await readyz()).status === 200, { timeoutMs: 30_000, what: 'readyz 200 again' });
    const after = await createOrder();
    expect(after.status).toBe(201);
    await expectEventsExactlyOnce([before.body.id, after.body.id]);
    // One warning when it went away and one when it came back, in every service, not one per request.
    await expectOneWarningEachWay(logs, 'nats');
  });

  it('answers a command in flight when NATS drops 504 "may still complete", never a hang, and it did complete once', async () => {
    // Production takes the command and waits on the scene row, which this transaction holds: the
    // command is delivered and running when NATS goes.
    const holder = await productionDb.startTransaction().execute();
    const name = `in-flight-${uuidv7()}`;
    let inFlight: Promise<Awaited<ReturnType<typeof createOrder>>> | undefined;
    try {
      const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(holder);
      await sql`select id from scenes where id = ${sceneId} for update`.execute(holder);
      // A hang fails here rather than at the test timeout (the gateway's RPC timeout is 10 s).
      inFlight = createOrder({}, { name, signal: AbortSignal.timeout(30_000) });
      await waitFor(
        async () => {
          const blocked = await sql<{ n: number }>`
            select count(*)::int as n from pg_stat_activity where ${rows[0]!.pid}::int = any(pg_blocking_pids(pid))`.execute(
            productionDb,
          );
          return blocked.rows[0]!.n > 0;
        },
        { timeoutMs: 15_000, what: 'production to be running the command, waiting on the scene row' },
      );
      await nats.stop();
    } finally {
      await holder.commit().execute(); // production commits the order; its reply has no way back
    }
    try {
      const res = await inFlight!;
      expect(res.status).toBe(504);
      expect(res.body).toMatchObject({ code: 'upstream_timeout', status: 504 });
      // The problem type a client follows says it: the command may still complete.
      const problemType = await (await fetch(new URL(res.body.type, system.gatewayUrl))).text();
      expect(problemType).toMatch(/may still complete/);
      expect(res.headers.get('content-type')).toBe('application/problem+json');
    } finally {
      await nats.restart();
    }
    await waitFor(async () => (await readyz()).status === 200, { timeoutMs: 30_000, what: 'readyz 200 again' });
    // It did complete, once: one order of that name, and one order.created for it.
    const { rows } = await sql<{ id: string }>`select id from orders where name = ${name}`.execute(productionDb);
    expect(rows).toHaveLength(1);
    created.push(rows[0]!.id);
    await expectEventsExactlyOnce([rows[0]!.id]);
  });

  it('answers 503 at once while Postgres is down (services and the idempotency store), and recovers', async () => {
    const before = await createOrder();
    expect(before.status).toBe(201);
    const logs = logsFromNow();
    try {
      await postgres.stop();
      await waitFor(async () => (await readyz()).body.failed.includes('postgres'), {
        what: 'readyz to name postgres',
      });
      let calls = await rpcCalls(CREATE);
      for (let i = 0; i < 5; i++) await expectFastUnavailable(await createOrder(), 'postgres');
      // Answered without waiting out the RPC timeout: each request reached production, whose own answer
      // (`unavailable`) came back; none timed out.
      expect(callsSince(calls, await rpcCalls(CREATE))).toEqual({ unavailable: 5 });
      // With an Idempotency-Key the gateway's own store is the first thing to fail: no request goes out.
      calls = await rpcCalls(CREATE);
      await expectFastUnavailable(await createOrder({ 'idempotency-key': uuidv7() }), 'postgres');
      expect(callsSince(calls, await rpcCalls(CREATE))).toEqual({});
    } finally {
      await postgres.restart();
    }
    await waitFor(async () => (await readyz()).status === 200, { timeoutMs: 30_000, what: 'readyz 200 again' });
    const after = [await createOrder(), await createOrder({ 'idempotency-key': uuidv7() })];
    expect(after.map((r) => r.status)).toEqual([201, 201]);
    await expectEventsExactlyOnce([before.body.id, ...after.map((r) => r.body.id)]);

    await expectOneWarningEachWay(logs, 'postgres');
  });
});
