import { connect } from '@nats-io/transport-node';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { createMetrics } from '../metrics/metrics.js';
import { silentLogger, testDatabaseUrl, testNatsUrl } from '../testing/index.js';
import { natsCheck, postgresCheck } from './checks.js';
import { HealthServer } from './health-server.js';

const json = (res: Response): Promise<any> => res.json();

describe('HealthServer', () => {
  const closers: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const c of closers) await c();
  });

  async function serve(checks: ConstructorParameters<typeof HealthServer>[0]['checks']) {
    const server = new HealthServer({
      port: 0,
      host: '127.0.0.1',
      checks,
      metrics: createMetrics('health-test'),
      logger: silentLogger(),
    });
    await server.listen();
    closers.push(() => server.close());
    const get = async (path: string) => {
      const res = await fetch(`http://127.0.0.1:${server.port}${path}`);
      return {
        status: res.status,
        body: res.headers.get('content-type')?.includes('json') ? await json(res) : await res.text(),
      };
    };
    return { server, get };
  }

  it('is ready when postgres and nats answer, and serves liveness and metrics', async () => {
    const pool = new pg.Pool({ connectionString: testDatabaseUrl(), max: 1 });
    const nc = await connect({ servers: testNatsUrl() });
    closers.push(
      () => pool.end(),
      () => nc.close(),
    );
    const { server, get } = await serve([postgresCheck(pool), natsCheck(() => nc)]);
    expect((await get('/readyz')).status).toBe(503); // still starting
    server.markRunning();
    expect(await get('/readyz')).toEqual({
      status: 200,
      body: { status: 'ready', failed: [], checks: { postgres: { ok: true }, nats: { ok: true } } },
    });
    expect(await get('/healthz')).toEqual({ status: 200, body: { status: 'ok' } });
    const metrics = await get('/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.body).toMatch(/process_cpu_user_seconds_total/);
  });

  it('answers 503 naming postgres when the database is unreachable', async () => {
    const pool = new pg.Pool({
      connectionString: 'postgres://postgres@127.0.0.1:1/none',
      max: 1,
      connectionTimeoutMillis: 500,
    });
    const nc = await connect({ servers: testNatsUrl() });
    closers.push(
      () => pool.end(),
      () => nc.close(),
    );
    const { server, get } = await serve([postgresCheck(pool), natsCheck(() => nc)]);
    server.markRunning();
    const res = await get('/readyz');
    expect(res.status).toBe(503);
    expect(res.body.failed).toEqual(['postgres']);
    expect(res.body.checks.postgres.ok).toBe(false);
    expect(res.body.checks.nats.ok).toBe(true);
  });

  it('answers 503 naming nats when the connection is gone, and shutting_down while draining', async () => {
    const pool = new pg.Pool({ connectionString: testDatabaseUrl(), max: 1 });
    const nc = await connect({ servers: testNatsUrl() });
    await nc.close();
    closers.push(() => pool.end());
    const { server, get } = await serve([postgresCheck(pool), natsCheck(() => nc)]);
    server.markRunning();
    const res = await get('/readyz');
    expect(res.status).toBe(503);
    expect(res.body.failed).toEqual(['nats']);
    server.markStopping();
    expect((await get('/readyz')).body.failed).toContain('shutting_down');
  });
});
