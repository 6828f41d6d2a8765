import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { orderRpc } from '@ferry/contracts';
import { createMetrics, DependencyMonitor, evaluateReadiness, mintAccessToken, RpcClient } from '@ferry/platform';
import { silentLogger, TestInfra } from '@ferry/platform/testing';
import type { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jwtStrategy } from '../auth/authenticate.js';
import { deviceTokenStrategy } from '../auth/device-token.js';
import type { GatewayDB } from '../database.js';
import { createGateway } from '../gateway.js';
import { IdempotencyStore } from '../idempotency/idempotency.store.js';
import { GATEWAY_MIGRATIONS } from '../migrations.js';
import { EventStreamHub } from '../sse/event-stream.js';
import { createHttpServer } from './http-server.js';

const SECRET = 'http-errors-test-secret-of-at-least-32-chars';
const ORG = '01900000-0000-7000-8000-0000000000bb';

/**
 * Errors produced before any service answers, through the gateway app: its RPC client is a real one on
 * the test's NATS, with no service behind it.
 */
describe('gateway errors before any route runs', () => {
  let infra: TestInfra;
  let app: Hono;
  let token: string;
  const monitor = new DependencyMonitor({ logger: silentLogger() });

  beforeAll(async () => {
    infra = await TestInfra.create({
      services: [{ name: 'gateway', migrations: GATEWAY_MIGRATIONS }],
      provision: false,
    });
    // Short, so that the one call the tests let time out does so quickly.
    const rpc = new RpcClient({ nc: infra.nc, ns: infra.ns, logger: silentLogger(), timeoutMs: 500, monitor });
    app = createGateway({
      logger: silentLogger(),
      metrics: createMetrics('http-errors-test'),
      rpc: () => rpc,
      idempotency: new IdempotencyStore(infra.database<GatewayDB>('gateway').db),
      strategies: [jwtStrategy(SECRET)],
      readiness: () => evaluateReadiness([], { phase: 'running' }),
      bodyLimitBytes: 64 * 1024,
      version: 'test',
      monitor,
    });
    token = await mintAccessToken({ secret: SECRET, org: ORG, role: 'admin', sub: 't' });
  });
  afterAll(() => infra.cleanup());

  const call = (method: string, path: string, init: RequestInit = {}) =>
    app.request(path, { method, ...init, headers: { authorization: `Bearer ${token}`, ...init.headers } });

  it('answers a wrong method with 405, an Allow header listing the route’s methods, and a problem body', async () => {
    const res = await call('PUT', '/api/v1/orders');
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('GET, HEAD, POST');
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    expect(await res.json()).toMatchObject({
      code: 'method_not_allowed',
      details: { allowed_methods: ['GET', 'HEAD', 'POST'] },
    });
    expect((await call('POST', '/api/v1/orders/01900000-0000-7000-8000-000000000001/tasks:bulk')).status).not.toBe(405);
    expect(
      (await call('GET', '/api/v1/orders/01900000-0000-7000-8000-000000000001/tasks:bulk')).headers.get('allow'),
    ).toBe('POST');
  });

  it('answers an unknown route with 404 route_not_found, and an unknown problem code too', async () => {
    expect(await (await call('GET', '/api/v1/nothing')).json()).toMatchObject({ code: 'route_not_found', status: 404 });
    expect((await app.request('/api/v1/problems/not_a_code')).status).toBe(404);
  });

  it('refuses a repeated query parameter, naming it, rather than reading only the first', async () => {
    const res = await call('GET', '/api/v1/orders?limit=200&limit=abc');
    expect(res.status).toBe(400);
    expect(((await res.json()) as { errors: unknown[] }).errors).toContainEqual({
      path: 'query.limit',
      message: 'given 2 times; give each query parameter once (lists are comma-separated)',
    });
  });

  it('refuses a query parameter on a route that takes none, and undecodable percent-encoding', async () => {
    const unknown = await call('POST', '/api/v1/scenes?debug=1', {
      headers: { 'content-type': 'application/json' },
      body: '{"name":"x"}',
    });
    expect(await unknown.json()).toMatchObject({ errors: [{ path: 'query.debug', message: 'unknown parameter' }] });
    const bad = await call('GET', '/api/v1/orders?q=%ED%A0%80');
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { errors: unknown[] }).errors).toEqual([
      { path: 'query.q', message: 'is not valid percent-encoded UTF-8' },
    ]);
  });

  it('refuses a body that is not UTF-8 instead of storing replacement characters', async () => {
    const res = await call('POST', '/api/v1/scenes', {
      headers: { 'content-type': 'application/json' },
      body: Buffer.concat([Buffer.from('{"name":"a'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]),
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ errors: [{ path: 'body', message: 'must be UTF-8 encoded JSON' }] });
  });

  it('names the field holding text Postgres cannot store, in the body and in the query', async () => {
    const res = await call('POST', '/api/v1/scenes', {
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'ok', description: 'nul\u0000here' }),
    });
    expect(await res.json()).toMatchObject({
      status: 400,
      errors: [{ path: 'body.description', message: 'must not contain NUL characters' }],
    });
    const q = await call('GET', '/api/v1/orders?q=a%00b');
    expect(await q.json()).toMatchObject({ status: 400, errors: [{ path: 'query.q' }] });
  });

  it('answers 503 at once while NATS is known to be down, without asking it, and 504 when a connected call times out', async () => {
    // A "service" that takes every list request and never answers: waiting for it ends in a timeout, so
    // only the dependency monitor can make the first answer a 503 — and it must not even ask.
    const asked: string[] = [];
    const silent = infra.nc.subscribe(infra.ns.subject(orderRpc.list.subject), {
      callback: (_err, msg) => {
        asked.push(msg.subject);
      },
    });
    await infra.nc.flush();
    try {
      monitor.down('nats', new Error('test outage'));
      const down = await call('GET', '/api/v1/orders');
      expect(down.status).toBe(503);
      expect(down.headers.get('retry-after')).toBe('2');
      expect(await down.json()).toMatchObject({ code: 'unavailable', details: { dependency: 'nats' } });
      expect(asked).toEqual([]);

      monitor.up('nats');
      const slow = await call('GET', '/api/v1/orders');
      expect(slow.status).toBe(504);
      expect(await slow.json()).toMatchObject({ code: 'upstream_timeout', details: { service: 'production' } });
      expect(asked).toHaveLength(1);
    } finally {
      monitor.up('nats');
      silent.unsubscribe();
    }
  });

  it('answers 503 unavailable with Retry-After, naming NATS, while the gateway is not connected to it yet', async () => {
    const device = createGateway({
      logger: silentLogger(),
      metrics: createMetrics('http-errors-test-no-nats'),
      rpc: () => undefined,
      idempotency: new IdempotencyStore(infra.database<GatewayDB>('gateway').db),
      strategies: [jwtStrategy(SECRET), deviceTokenStrategy({ rpc: () => undefined })],
      readiness: () => evaluateReadiness([], { phase: 'running' }),
      bodyLimitBytes: 64 * 1024,
      version: 'test',
    });
    const answers = [
      // A route that asks a service, and a device token that transfer would have to check.
      await device.request('/api/v1/orders', { headers: { authorization: `Bearer ${token}` } }),
      await device.request('/api/v1/uploads', { headers: { authorization: `Bearer fdt_${'a'.repeat(40)}` } }),
    ];
    for (const res of answers) {
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('2');
      expect(await res.json()).toMatchObject({ code: 'unavailable', details: { dependency: 'nats' } });
    }
  });

  it('answers the events route with 503 and Retry-After, before any stream, while shutting down or without NATS', async () => {
    const events = new EventStreamHub();
    const gateway = createGateway({
      logger: silentLogger(),
      metrics: createMetrics('http-errors-test-events'),
      rpc: () => undefined,
      jetstream: () => undefined,
      events,
      idempotency: new IdempotencyStore(infra.database<GatewayDB>('gateway').db),
      strategies: [jwtStrategy(SECRET)],
      readiness: () => evaluateReadiness([], { phase: 'running' }),
      bodyLimitBytes: 64 * 1024,
      version: 'test',
    });
    const open = () =>
      gateway.request('/api/v1/data-ops/bulk-runs/01900000-0000-7000-8000-000000000001/events', {
        headers: { authorization: `Bearer ${token}` },
      });
    const notConnected = await open();
    expect(notConnected.status).toBe(503);
    expect(notConnected.headers.get('content-type')).toBe('application/problem+json');
    expect(await notConnected.json()).toMatchObject({ code: 'unavailable', details: { dependency: 'nats' } });
    await events.closeAll();
    const stopping = await open();
    expect(stopping.status).toBe(503);
    expect(stopping.headers.get('content-type')).toBe('application/problem+json');
    expect(stopping.headers.get('retry-after')).toBe('1');
    expect(await stopping.json()).toMatchObject({
      code: 'unavailable',
      detail: expect.stringMatching(/shutting down/),
    });
    expect(events.connections).toBe(0);
  });

  it('does not serve /metrics on the API port', async () => {
    expect((await app.request('/metrics')).status).toBe(404);
  });

  describe('over a socket, what the HTTP server refuses before the app runs', () => {
    let server: http.Server;
    let port: number;

    beforeAll(async () => {
      server = createHttpServer(app, { logger: silentLogger(), hostname: '127.0.0.1' });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      port = (server.address() as AddressInfo).port;
    });
    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

    /** node:http sends these as given (a backslash, any Host, an absolute-form target); fetch would not. */
    const send = (options: http.RequestOptions) =>
      new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port, agent: false, ...options }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            body += chunk;
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        });
        req.on('error', reject);
        req.end();
      });

    it('answers a backslash in the path, a bad Host, a bad absolute-form target and a missing Host with a 400 problem', async () => {
      const cases: Record<string, http.RequestOptions> = {
        'a backslash in the path': { path: '/api\\v1/orders' },
        'an invalid Host header': { path: '/api/v1/orders', headers: { host: 'a@b' } },
        'a bad absolute-form target': { path: 'http://[bad/api/v1/orders' },
        'an HTTP/1.1 request without Host': { path: '/api/v1/orders', setHost: false },
      };
      for (const [what, options] of Object.entries(cases)) {
        const res = await send(options);
        expect(res.status, what).toBe(400);
        expect(res.headers['content-type'], what).toBe('application/problem+json');
        expect(res.headers.connection, what).toBe('close');
        const problem = JSON.parse(res.body) as { code: string; request_id: string; detail: string };
        expect(problem, what).toMatchObject({ code: 'bad_request', status: 400 });
        expect(res.headers['x-request-id'], what).toBe(problem.request_id);
      }
    });

    it('answers an Expect other than 100-continue with a 417 problem, and serves a sound request as usual', async () => {
      const res = await send({ path: '/healthz', headers: { expect: 'teapot' } });
      expect(res.status).toBe(417);
      expect(res.headers['content-type']).toBe('application/problem+json');
      expect(JSON.parse(res.body)).toMatchObject({ code: 'expectation_failed', status: 417 });
      expect(await send({ path: '/healthz' })).toMatchObject({ status: 200, body: '{"status":"ok"}' });
    });
  });
});
