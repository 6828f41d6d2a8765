import { defineRpc, type RpcCallContext } from '@ferry/contracts';
import { sql } from 'kysely';
import { v4 as uuidv4 } from 'uuid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { BlobNotFoundError, BlobStorageError } from '../blob/blob-errors.js';
import { createPool, type Database } from '../db/database.js';
import { DomainError } from '../errors/domain-error.js';
import { DependencyMonitor } from '../health/dependency-monitor.js';
import { currentTrace } from '../logging/context.js';
import { createMetrics } from '../metrics/metrics.js';
import { captureLogger, silentLogger, TestInfra, testDatabaseUrl } from '../testing/index.js';
import { RpcClient } from './rpc-client.js';
import { RpcServer } from './rpc-server.js';

const echo = defineRpc({
  subject: 'production.rpc.probe.echo',
  kind: 'query',
  request: z.object({ text: z.string().min(1), delayMs: z.number().int().optional() }),
  reply: z.object({ text: z.string(), requestId: z.string().optional() }),
});
const fail = defineRpc({
  subject: 'production.rpc.probe.fail',
  kind: 'query',
  request: z.object({ kind: z.enum(['domain', 'bug']) }),
  reply: z.object({}),
});
const record = defineRpc({
  subject: 'production.rpc.probe.record',
  kind: 'command',
  request: z.object({ n: z.number().int(), reject: z.boolean().default(false) }),
  reply: z.object({ id: z.number().int(), n: z.number().int() }),
});
const storage = defineRpc({
  subject: 'production.rpc.probe.storage',
  kind: 'command',
  request: z.object({ failure: z.enum(['refused', 'timeout', 's3_503', 'missing']) }),
  reply: z.object({}),
});
const bulk = defineRpc({
  subject: 'production.rpc.probe.bulk',
  kind: 'query',
  request: z.object({ items: z.array(z.string()), factor: z.number().int() }),
  reply: z.object({ items: z.array(z.string()) }),
});
const busy = defineRpc({
  subject: 'production.rpc.probe.busy',
  kind: 'query',
  request: z.object({}),
  reply: z.object({}),
});
const nobody = defineRpc({
  subject: 'production.rpc.probe.nobody',
  kind: 'query',
  request: z.object({}),
  reply: z.object({}),
});

const ctx = (extra: Partial<RpcCallContext> = {}): RpcCallContext => ({
  request_id: 'req-rpc-1',
  actor: { kind: 'user', sub: 'tester', org: '01900000-0000-7000-8000-00000000000a', role: 'operator' },
  ...extra,
});

const system_max = (infra: TestInfra) => infra.nc.info?.max_payload ?? 1024 * 1024;

describe('RpcServer and RpcClient', () => {
  let infra: TestInfra;
  let database: Database<any>;
  let server: RpcServer;
  let client: RpcClient;
  const captured = captureLogger('rpc');
  const monitor = new DependencyMonitor({ logger: silentLogger() });
  /** Texts the first server's echo handler was called with. */
  const echoedByFirst: string[] = [];

  beforeAll(async () => {
    infra = await TestInfra.create({ services: [{ name: 'rpc' }], provision: false });
    database = infra.database('rpc');
    await sql`create table records (id serial primary key, n int not null)`.execute(database.db);
    server = new RpcServer({
      nc: infra.nc,
      ns: infra.ns,
      service: 'production',
      db: database.db,
      logger: captured.logger,
      monitor,
    });
    server.register(echo, async (data: { text: string; delayMs?: number }) => {
      echoedByFirst.push(data.text);
      if (data.delayMs) await new Promise((r) => setTimeout(r, data.delayMs));
      return { text: data.text, requestId: currentTrace().requestId };
    });
    server.register(fail, async (data: { kind: string }) => {
      if (data.kind === 'domain') throw new DomainError('name_taken', 'an order named x exists', { name: 'x' });
      throw new Error('relation "secret_table" does not exist');
    });
    server.register(record, async (data: { n: number; reject: boolean }, { trx }) => {
      const { rows } = await sql<{ id: number }>`insert into records (n) values (${data.n}) returning id`.execute(trx);
      if (data.reject) throw new DomainError('conflict', 'rejected after writing');
      await new Promise((r) => setTimeout(r, 20));
      return { id: rows[0]!.id, n: data.n };
    });
    server.register(storage, async (data: { failure: string }) => {
      const key = 'uploads/0190/secret-key.mcap';
      const cause = {
        // What S3's client rejects with when the store cannot be reached: a socket error, or a 5xx.
        refused: Object.assign(new Error('connect ECONNREFUSED 10.0.0.9:9000'), { code: 'ECONNREFUSED' }),
        timeout: Object.assign(new Error('connect ETIMEDOUT 10.0.0.9:9000'), { code: 'ETIMEDOUT' }),
        s3_503: Object.assign(new Error('Please reduce your request rate.'), {
          name: 'SlowDown',
          $metadata: { httpStatusCode: 503 },
        }),
      }[data.failure];
      if (!cause) throw new BlobNotFoundError(key);
      throw new BlobStorageError('createMultipart', key, { cause });
    });
    server.register(busy, async () => {
      // A real full pool: its one connection is held, so the handler's checkout times out in the queue.
      const full = createPool({
        url: testDatabaseUrl(),
        schema: 'public',
        applicationName: 'rpc-test',
        logger: silentLogger(),
        max: 1,
        connectionTimeoutMs: 200,
      });
      const held = await full.connect();
      try {
        await full.query('select 1');
        return {};
      } finally {
        held.release();
        await full.end();
      }
    });
    server.register(bulk, async (data: { items: string[]; factor: number }) => ({
      items: data.items.flatMap((item) => Array.from({ length: data.factor }, (_, i) => `${item}#${i}`)),
    }));
    server.start();
    client = new RpcClient({ nc: infra.nc, ns: infra.ns, logger: silentLogger(), timeoutMs: 2_000 });
  });
  afterAll(async () => {
    monitor.close();
    await server.stop();
    await infra.cleanup();
  });

  const count = async () =>
    (await sql<{ n: number }>`select count(*)::int as n from records`.execute(database.db)).rows[0]!.n;

  it('answers with the contract-checked reply and carries the request id into the handler', async () => {
    await expect(client.call(echo, { text: 'hi' }, ctx())).resolves.toEqual({ text: 'hi', requestId: 'req-rpc-1' });
  });

  it('rejects a request that does not match the contract before any handler runs', async () => {
    const raw = await infra.nc.request(
      infra.ns.subject(echo.subject),
      JSON.stringify({ ctx: ctx(), data: { text: '' } }),
    );
    expect(raw.json()).toMatchObject({
      ok: false,
      error: { code: 'validation_failed', details: { errors: [{ path: 'text' }] } },
    });
    const noCtx = await infra.nc.request(infra.ns.subject(echo.subject), JSON.stringify({ data: { text: 'x' } }));
    expect(noCtx.json()).toMatchObject({ ok: false, error: { code: 'validation_failed' } });
  });

  it('carries a domain error across as its code, message and details', async () => {
    const err = await client.call(fail, { kind: 'domain' }, ctx()).catch((e) => e);
    expect(err).toBeInstanceOf(DomainError);
    expect(err).toMatchObject({ code: 'name_taken', message: 'an order named x exists', details: { name: 'x' } });
  });

  it('answers an unexpected error as `internal` without its text, and logs the real error', async () => {
    const err = await client.call(fail, { kind: 'bug' }, ctx()).catch((e) => e);
    expect(err).toMatchObject({ code: 'internal', message: 'internal error' });
    expect(JSON.stringify(err)).not.toMatch(/secret_table/);
    const line = captured.lines().find((l) => l.msg === 'RPC handler failed');
    expect(line).toMatchObject({ request_id: 'req-rpc-1', subject: fail.subject });
    expect(JSON.stringify(line)).toMatch(/secret_table/);
  });

  it('answers an object store failure as storage_error, not as a Postgres outage, naming nothing of the store', async () => {
    for (const failure of ['refused', 'timeout', 's3_503'] as const) {
      const err = await client.call(storage, { failure }, ctx()).catch((e) => e);
      expect(err, failure).toBeInstanceOf(DomainError);
      expect(err, failure).toMatchObject({ code: 'storage_error' });
      expect(JSON.stringify({ message: err.message, details: err.details }), failure).not.toMatch(
        /secret-key|10\.0\.0\.9|ECONNREFUSED|ETIMEDOUT|SlowDown|postgres/,
      );
    }
    // The monitor was told of no outage: Postgres is up, and nothing logged it as down.
    expect(monitor.isDown('postgres')).toBe(false);
    // The store's own error is in the log, for the operator.
    const line = captured
      .lines()
      .find((l) => l.msg === 'RPC handler: object store failed' && l.subject === storage.subject);
    expect(JSON.stringify(line)).toMatch(/ECONNREFUSED/);
  });

  it('answers a saturated database pool 503 unavailable with Retry-After, not as a Postgres outage nor a bug', async () => {
    const err = await client.call(busy, {}, ctx()).catch((e) => e);
    expect(err).toBeInstanceOf(DomainError);
    expect(err).toMatchObject({ code: 'unavailable', details: { reason: 'busy' } });
    expect(err.details.retry_after_seconds).toBeGreaterThan(0);
    expect(err.details).not.toHaveProperty('dependency');
    expect(monitor.isDown('postgres')).toBe(false);
    expect(captured.lines().filter((l) => l.subject === busy.subject && l.msg === 'RPC handler failed')).toEqual([]);
  });

  it('answers a missing stored object as not_found', async () => {
    const err = await client.call(storage, { failure: 'missing' }, ctx()).catch((e) => e);
    expect(err).toMatchObject({ code: 'not_found' });
    expect(err.message).not.toMatch(/secret-key/);
  });

  it('reports a service nobody answers for as unavailable, and a slow one as upstream_timeout', async () => {
    await expect(client.call(nobody, {}, ctx())).rejects.toMatchObject({ code: 'unavailable' });
    await expect(client.call(echo, { text: 'slow', delayMs: 800 }, ctx(), { timeoutMs: 200 })).rejects.toMatchObject({
      code: 'upstream_timeout',
    });
  });

  it('counts each call by outcome, and one made while NATS is known down as not_sent: no request goes out', async () => {
    const metrics = createMetrics('rpc-client-test');
    const natsMonitor = new DependencyMonitor({ logger: silentLogger() });
    const counted = new RpcClient({
      nc: infra.nc,
      ns: infra.ns,
      logger: silentLogger(),
      timeoutMs: 2_000,
      monitor: natsMonitor,
      metrics,
    });
    const calls = async () =>
      Object.fromEntries(
        (await metrics.rpcCalls.get()).values.map((v) => [`${v.labels.subject} ${v.labels.outcome}`, v.value]),
      );
    try {
      await counted.call(echo, { text: 'counted' }, ctx());
      await expect(counted.call(fail, { kind: 'domain' }, ctx())).rejects.toMatchObject({ code: 'name_taken' });
      await expect(counted.call(nobody, {}, ctx())).rejects.toMatchObject({ code: 'unavailable' });
      natsMonitor.down('nats', new Error('disconnected'));
      await expect(counted.call(echo, { text: 'never sent' }, ctx())).rejects.toMatchObject({
        code: 'unavailable',
        details: { dependency: 'nats' },
      });
      expect(await calls()).toEqual({
        [`${echo.subject} ok`]: 1,
        [`${fail.subject} name_taken`]: 1,
        [`${nobody.subject} no_responders`]: 1,
        [`${echo.subject} not_sent`]: 1,
      });
      expect(echoedByFirst).toContain('counted');
      expect(echoedByFirst).not.toContain('never sent'); // NATS is in fact up: had it gone out, it was answered
    } finally {
      natsMonitor.close();
    }
  });

  it('runs a command with a command id once; a repeat returns the first reply without running again', async () => {
    const before = await count();
    const commandId = uuidv4();
    const first = await client.call(record, { n: 7 }, ctx({ command_id: commandId }));
    const again = await client.call(record, { n: 7 }, ctx({ command_id: commandId }));
    expect(again).toEqual(first);
    expect(await count()).toBe(before + 1);
  });

  it('runs a command once when twenty copies with one command id arrive together', async () => {
    const before = await count();
    const commandId = uuidv4();
    const replies = await Promise.all(
      Array.from({ length: 20 }, () => client.call(record, { n: 9 }, ctx({ command_id: commandId }))),
    );
    expect(new Set(replies.map((r) => r.id)).size).toBe(1);
    expect(await count()).toBe(before + 1);
  });

  it('rolls back everything a command wrote when it ends in a domain error', async () => {
    const before = await count();
    const commandId = uuidv4();
    await expect(client.call(record, { n: 1, reject: true }, ctx({ command_id: commandId }))).rejects.toMatchObject({
      code: 'conflict',
    });
    expect(await count()).toBe(before);
    // Nothing was recorded for the command id either, so a corrected retry may run.
    await expect(client.call(record, { n: 1 }, ctx({ command_id: commandId }))).resolves.toMatchObject({ n: 1 });
  });

  it('carries requests and replies far larger than a NATS message, intact', async () => {
    const max = system_max(infra);
    // ~3 MiB request, ~9 MiB reply: both well over max_payload.
    const items = Array.from({ length: 30_000 }, (_, i) => `item-${i}-${'x'.repeat(90)}`);
    expect(JSON.stringify(items).length).toBeGreaterThan(max * 2);
    const reply = await client.call(bulk, { items, factor: 3 }, ctx(), { timeoutMs: 20_000 });
    expect(reply.items).toHaveLength(90_000);
    expect(reply.items[0]).toBe(`${items[0]}#0`);
    expect(reply.items.at(-1)).toBe(`${items.at(-1)}#2`);
    // Small ones still travel in one message.
    await expect(client.call(echo, { text: 'small' }, ctx())).resolves.toMatchObject({ text: 'small' });
  });

  it('spreads requests over replicas in the queue group, each answered once', async () => {
    const second = new RpcServer({
      nc: infra.nc,
      ns: infra.ns,
      service: 'production',
      db: database.db,
      logger: silentLogger(),
    });
    const echoedBySecond: string[] = [];
    second.register(echo, async (data: { text: string }) => {
      echoedBySecond.push(data.text);
      return { text: data.text };
    });
    second.start();
    echoedByFirst.length = 0;
    const texts = Array.from({ length: 100 }, (_, i) => `m${i}`);
    const replies = await Promise.all(texts.map((text) => client.call(echo, { text }, ctx())));
    await second.stop();
    expect(replies.map((r) => r.text)).toEqual(texts);
    // Both replicas took a share, and between them every request was handled exactly once.
    expect(echoedByFirst.length).toBeGreaterThan(0);
    expect(echoedBySecond.length).toBeGreaterThan(0);
    expect([...echoedByFirst, ...echoedBySecond].sort()).toEqual([...texts].sort());
  });
});
