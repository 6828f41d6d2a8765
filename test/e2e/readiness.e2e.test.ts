import { waitFor } from '@ferry/platform/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { json } from '../support/http.js';
import { System } from '../support/system.js';

const DEAD_POSTGRES = 'postgres://postgres@127.0.0.1:1/ferry';
const DEAD_NATS = 'nats://127.0.0.1:1';

/** /readyz names the dependency that is down, for the gateway and for a service (DESIGN §4, §9). */
describe('readiness when a dependency is unreachable', () => {
  let system: System;
  beforeAll(async () => {
    system = await System.create();
  });
  // Each test starts what it needs from nothing: none relies on what an earlier one left running.
  afterEach(async () => {
    for (const name of [...system.processes.keys()]) await system.stop(name);
  });
  afterAll(() => system?.shutdown());

  async function readyz(url: string) {
    const res = await fetch(`${url}/readyz`);
    return {
      status: res.status,
      body: (await json(res)) as { failed: string[]; checks: Record<string, { ok: boolean }> },
    };
  }

  /** The process answers before its first connections are made; wait until `healthy` reports healthy. */
  function readyzOnce(url: string, healthy: 'postgres' | 'nats') {
    return waitFor(
      async () => {
        const r = await readyz(url);
        return r.body.checks[healthy]?.ok === true && r;
      },
      { timeoutMs: 15_000, what: `${healthy} to report healthy` },
    );
  }

  it('production answers 503 naming postgres', async () => {
    await system.start(['production'], { env: { DATABASE_URL: DEAD_POSTGRES }, waitForReady: false });
    const { status, body } = await readyzOnce(system.healthUrl('production'), 'nats');
    expect(status).toBe(503);
    expect(body.failed).toContain('postgres');
    expect(body.failed).not.toContain('nats');
    expect((await fetch(`${system.healthUrl('production')}/healthz`)).status).toBe(200);
  });

  it('production answers 503 naming nats', async () => {
    await system.start(['production'], { env: { NATS_URL: DEAD_NATS }, waitForReady: false });
    const { status, body } = await readyzOnce(system.healthUrl('production'), 'postgres');
    expect(status).toBe(503);
    expect(body.failed).toContain('nats');
    expect(body.failed).not.toContain('postgres');
  });

  it('the gateway answers 503 naming postgres', async () => {
    await system.start(['gateway'], { env: { DATABASE_URL: DEAD_POSTGRES }, waitForReady: false });
    const { status, body } = await readyzOnce(system.gatewayUrl, 'nats');
    expect(status).toBe(503);
    expect(body.failed).toContain('postgres');
    expect(body.failed).not.toContain('nats');
  });

  it('the gateway answers 503 naming nats', async () => {
    await system.start(['gateway'], { env: { NATS_URL: DEAD_NATS }, waitForReady: false });
    const { status, body } = await readyzOnce(system.gatewayUrl, 'postgres');
    expect(status).toBe(503);
    expect(body.failed).toContain('nats');
    expect(body.failed).not.toContain('postgres');
  });

  it('the gateway answers 503 naming a service that does not answer', async () => {
    await system.start(['transfer', 'qa', 'gateway']);
    const { status, body } = await readyz(system.gatewayUrl);
    expect(status).toBe(503);
    expect(body.failed).toEqual(['production']);
    await system.start(['production']);
    expect((await readyz(system.gatewayUrl)).status).toBe(200);
  });

  it('a service refuses to start, naming the problem, when its configuration is invalid', async () => {
    const err = await system.start(['production'], { env: { HEALTH_PORT: 'abc' } }).catch((e) => e as Error);
    expect(String(err)).toMatch(/exited \(1\)/);
    expect(String(err)).toMatch(/HEALTH_PORT/);
    system.processes.delete('production');
    const gw = await system.start(['gateway'], { env: { FERRY_JWT_SECRET: 'short' } }).catch((e) => e as Error);
    expect(String(gw)).toMatch(/FERRY_JWT_SECRET/);
  });
});
