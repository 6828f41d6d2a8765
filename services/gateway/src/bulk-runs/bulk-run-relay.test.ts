import { createMetrics, evaluateReadiness, RpcClient } from '@ferry/platform';
import { silentLogger } from '@ferry/platform/testing';
import type { JetStreamManager } from '@nats-io/jetstream';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeQaBulkRuns } from '../../../../test/support/fake-qa-bulk-runs.js';
import { System } from '../../../../test/support/system.js';
import { jwtStrategy } from '../auth/authenticate.js';
import type { GatewayDB } from '../database.js';
import { createGateway } from '../gateway.js';
import { IdempotencyStore } from '../idempotency/idempotency.store.js';

/** Reads a stream's body to its end, whether the server closed it or dropped it. */
async function bodyOf(res: Response): Promise<{ text: string; dropped: boolean }> {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return { text, dropped: false };
      text += decoder.decode(value, { stream: true });
    }
  } catch {
    return { text, dropped: true };
  }
}

/** The relay in this process, on the real QA stream, where a JetStream call can be made to fail. */
describe('bulk run relay', () => {
  const org = uuidv7();
  let system: System;
  let qa: FakeQaBulkRuns;
  let token: string;
  /** `jsm.streams` methods that fail (a timeout, a lost leader) rather than answer. */
  const failing = new Set<'getMessage' | 'info'>();

  beforeAll(async () => {
    system = await System.create();
    qa = new FakeQaBulkRuns(system);
    token = await system.token(org, 'operator');
  }, 60_000);
  afterAll(async () => {
    await qa?.stop();
    await system?.shutdown();
  });

  function gateway() {
    const { nc, ns, js, jsm } = system.infra;
    // The real manager, except for the methods in `failing`.
    const streams = new Proxy(jsm.streams, {
      get(target, prop) {
        if (failing.has(prop as never)) return () => Promise.reject(new Error('request timed out'));
        const value = Reflect.get(target, prop, target);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const flaky = new Proxy(jsm, {
      get: (target, prop) => (prop === 'streams' ? streams : Reflect.get(target, prop, target)),
    }) as JetStreamManager;
    const rpc = new RpcClient({ nc, ns, logger: silentLogger(), timeoutMs: 10_000 });
    return createGateway({
      logger: silentLogger(),
      metrics: createMetrics('bulk-run-relay-test'),
      rpc: () => rpc,
      jetstream: () => ({ js, jsm: flaky, ns }),
      idempotency: new IdempotencyStore(system.infra.database<GatewayDB>('gateway').db),
      strategies: [jwtStrategy(system.jwtSecret)],
      readiness: () => evaluateReadiness([], { phase: 'running' }),
      bodyLimitBytes: 64 * 1024,
      version: 'test',
    });
  }

  it('drops a resumed stream rather than end it early when it cannot tell where the run’s events end', async () => {
    const app = gateway();
    const run = qa.create(org);
    const s1 = await qa.step(run.run_id);
    const s2 = await qa.step(run.run_id);
    // Ended, and its terminal event lost: the relay must find the run's last event before ending the stream.
    await qa.finish(run.run_id, 'completed', { publish: false });
    const resume = () =>
      app.request(`/api/v1/data-ops/bulk-runs/${run.run_id}/events`, {
        headers: { authorization: `Bearer ${token}`, 'last-event-id': String(s1) },
      });

    // Not a "no message" answer (getMessage gives null for that): it cannot say where the run's events end.
    failing.add('getMessage');
    const failed = await bodyOf(await resume());
    failing.delete('getMessage');
    // No terminal frame that skips s2: the client is dropped and resumes from s1.
    expect(failed.dropped).toBe(true);
    expect(failed.text).not.toContain('bulk_run_completed');

    const again = await bodyOf(await resume());
    expect(again.dropped).toBe(false);
    expect(again.text).toMatch(new RegExp(`event: bulk_run_progress\\nid: ${s2}\\n[^]*event: bulk_run_completed\\n`));
  });

  it('answers 503 problem+json naming NATS, before any stream, when JetStream does not answer', async () => {
    const run = qa.create(org);
    failing.add('info');
    const res = await gateway().request(`/api/v1/data-ops/bulk-runs/${run.run_id}/events`, {
      headers: { authorization: `Bearer ${token}` },
    });
    failing.delete('info');
    expect(res.status).toBe(503);
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    expect(res.headers.get('retry-after')).not.toBeNull();
    expect(await res.json()).toMatchObject({ code: 'unavailable', details: { dependency: 'nats' } });
  });
});
