import type { Database } from '@ferry/platform';
import { mintAccessToken } from '@ferry/platform';
import { waitFor } from '@ferry/platform/testing';
import type { Hono } from 'hono';
import { sql } from 'kysely';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inProcessGateway } from '../../../test/support/gateway-app.js';
import { json } from '../../../test/support/http.js';
import { exitWithin, System } from '../../../test/support/system.js';
import type { GatewayDB } from './database.js';

describe('gateway HTTP API (real production service behind NATS)', () => {
  let system: System;
  let app: Hono;
  let request: ReturnType<typeof inProcessGateway>['request'];
  let gatewayDb: Database<GatewayDB>;
  const orgA = uuidv7();
  const orgB = uuidv7();
  const tokens: Record<string, string> = {};

  beforeAll(async () => {
    system = await System.create();
    await system.start(['production']);
    const gateway = inProcessGateway(system);
    app = gateway.app;
    request = gateway.request;
    gatewayDb = gateway.gatewayDb;
    tokens.admin = await system.token(orgA, 'admin');
    tokens.operator = await system.token(orgA, 'operator');
    tokens.viewer = await system.token(orgA, 'viewer');
    tokens.otherOrg = await system.token(orgB, 'operator');
  });
  afterAll(() => system?.shutdown());

  async function newScene(token = tokens.operator!, name = `scene-${uuidv7()}`) {
    const res = await request('POST', '/scenes', { token, body: { name } });
    expect(res.status).toBe(201);
    return (await json(res)) as { id: string };
  }

  const orderBody = (sceneId: string, name = `order-${uuidv7()}`) => ({ scene_id: sceneId, name, target_count: 10 });

  describe('POST /orders', () => {
    it('answers 401 without a token, with a problem body and WWW-Authenticate', async () => {
      const res = await request('POST', '/orders', { body: {} });
      expect(res.status).toBe(401);
      expect(res.headers.get('content-type')).toBe('application/problem+json');
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
      expect(await json(res)).toMatchObject({
        status: 401,
        code: 'unauthenticated',
        type: '/api/v1/problems/unauthenticated',
      });
    });

    it('answers 401 for a forged, expired or malformed token', async () => {
      const forged = await mintAccessToken({
        secret: 'another-secret-of-at-least-32-chars!!',
        org: orgA,
        role: 'admin',
        sub: 'x',
      });
      const expired = await mintAccessToken({
        secret: system.jwtSecret,
        org: orgA,
        role: 'admin',
        sub: 'x',
        ttlSeconds: -10,
      });
      for (const token of [forged, expired, 'not-a-token']) {
        const res = await request('POST', '/orders', { token, body: {} });
        expect(res.status).toBe(401);
        expect(res.headers.get('www-authenticate')).toMatch(/invalid_token/);
      }
      const basic = await request('GET', '/orders', { headers: { authorization: 'Basic dXNlcjpwdw==' } });
      expect(basic.status).toBe(401);
    });

    it('answers 403 to a viewer and 201 to an operator', async () => {
      const scene = await newScene();
      const viewer = await request('POST', '/orders', { token: tokens.viewer, body: orderBody(scene.id) });
      expect(viewer.status).toBe(403);
      expect(await json(viewer)).toMatchObject({ code: 'forbidden' });
      const operator = await request('POST', '/orders', {
        token: tokens.operator,
        body: orderBody(scene.id, 'by-operator'),
      });
      expect(operator.status).toBe(201);
      const order = await json(operator);
      expect(order).toMatchObject({
        name: 'by-operator',
        status: 'created',
        organization_id: orgA,
        scene_id: scene.id,
      });
      expect(operator.headers.get('location')).toBe(`/api/v1/orders/${order.id}`);
      // A viewer may read what it may not write.
      expect((await request('GET', `/orders/${order.id}`, { token: tokens.viewer })).status).toBe(200);
    });

    it('answers 400 naming each bad field, and creates nothing', async () => {
      const before = (await json(await request('GET', '/orders?limit=200', { token: tokens.admin }))).items.length;
      const res = await request('POST', '/orders', {
        token: tokens.operator,
        body: { name: '', target_count: 0, priority: 'asap', deadline: 'tomorrow', extra: true },
      });
      expect(res.status).toBe(400);
      const problem = await json(res);
      expect(problem.code).toBe('validation_failed');
      const fields = Object.fromEntries(
        problem.errors.map((e: { path: string; message: string }) => [e.path, e.message]),
      );
      expect(Object.keys(fields).sort()).toEqual(
        ['body.deadline', 'body.extra', 'body.name', 'body.priority', 'body.scene_id', 'body.target_count'].sort(),
      );
      expect(fields['body.scene_id']).toBe('required');
      expect(fields['body.extra']).toBe('unknown field');
      const after = (await json(await request('GET', '/orders?limit=200', { token: tokens.admin }))).items.length;
      expect(after).toBe(before);
    });

    it('answers 409 for a name taken in the organization, 201 for the same name in another one', async () => {
      const scene = await newScene();
      const first = await request('POST', '/orders', {
        token: tokens.operator,
        body: orderBody(scene.id, 'weekly-500'),
      });
      expect(first.status).toBe(201);
      const again = await request('POST', '/orders', { token: tokens.admin, body: orderBody(scene.id, 'weekly-500') });
      expect(again.status).toBe(409);
      expect(await json(again)).toMatchObject({ code: 'name_taken', details: { name: 'weekly-500' } });
      const otherScene = await newScene(tokens.otherOrg);
      const other = await request('POST', '/orders', {
        token: tokens.otherOrg,
        body: orderBody(otherScene.id, 'weekly-500'),
      });
      expect(other.status).toBe(201);
    });

    it('answers 404 for another organization’s order, never its data', async () => {
      const scene = await newScene(tokens.otherOrg);
      const res = await request('POST', '/orders', {
        token: tokens.otherOrg,
        body: orderBody(scene.id, 'secret-order'),
      });
      const theirs = await json(res);
      for (const [method, body] of [
        ['GET', undefined],
        ['PATCH', { priority: 'high' }],
        ['DELETE', undefined],
      ] as const) {
        const r = await request(method, `/orders/${theirs.id}`, { token: tokens.admin, body });
        expect(r.status).toBe(404);
        expect(JSON.stringify(await json(r))).not.toContain('secret-order');
      }
      const list = await json(await request('GET', '/orders?q=secret-order', { token: tokens.admin }));
      expect(list.items).toEqual([]);
    });

    it('lets a deleted order’s name be used again', async () => {
      const scene = await newScene();
      const first = await json(
        await request('POST', '/orders', { token: tokens.operator, body: orderBody(scene.id, 'reusable') }),
      );
      expect((await request('DELETE', `/orders/${first.id}`, { token: tokens.operator })).status).toBe(204);
      expect((await request('GET', `/orders/${first.id}`, { token: tokens.operator })).status).toBe(404);
      const second = await request('POST', '/orders', {
        token: tokens.operator,
        body: orderBody(scene.id, 'reusable'),
      });
      expect(second.status).toBe(201);
      expect((await json(second)).id).not.toBe(first.id);
    });

    it('answers 422 for a scene that is not in the organization', async () => {
      const theirs = await newScene(tokens.otherOrg);
      const res = await request('POST', '/orders', { token: tokens.operator, body: orderBody(theirs.id) });
      expect(res.status).toBe(422);
      expect(await json(res)).toMatchObject({ code: 'reference_not_found', errors: [{ path: 'body.scene_id' }] });
    });

    it('answers 415 for a non-JSON body, 400 for broken JSON and 413 for an oversized one', async () => {
      const form = await request('POST', '/orders', {
        token: tokens.operator,
        body: 'a=b',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      });
      expect(form.status).toBe(415);
      const broken = await request('POST', '/orders', { token: tokens.operator, body: '{"name":' });
      expect(broken.status).toBe(400);
      expect(await json(broken)).toMatchObject({ code: 'validation_failed', errors: [{ path: 'body' }] });
      const huge = await request('POST', '/orders', {
        token: tokens.operator,
        body: { metadata: { x: 'y'.repeat(70 * 1024) } },
      });
      expect(huge.status).toBe(413);
    });
  });

  describe('other routes', () => {
    it('validates path parameters and query strings, naming them', async () => {
      const bad = await request('GET', '/orders/not-a-uuid', { token: tokens.viewer });
      expect(bad.status).toBe(400);
      expect((await json(bad)).errors[0].path).toBe('path.id');
      const query = await request('GET', '/orders?limit=500&status=created,nope&color=red', { token: tokens.viewer });
      expect(query.status).toBe(400);
      const paths = (await json(query)).errors.map((e: { path: string }) => e.path).sort();
      expect(paths).toEqual(['query.color', 'query.limit', 'query.status.1']);
    });

    it('pages lists with limit and an opaque cursor in a stable order', async () => {
      const scene = await newScene(tokens.admin);
      const created: string[] = [];
      for (let i = 0; i < 5; i++) {
        created.push(
          (
            await json(
              await request('POST', '/orders', { token: tokens.admin, body: orderBody(scene.id, `page-${i}`) }),
            )
          ).id,
        );
      }
      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const res = await request('GET', `/orders?scene_id=${scene.id}&limit=2${cursor ? `&cursor=${cursor}` : ''}`, {
          token: tokens.viewer,
        });
        const page = await json(res);
        expect(page.items.length).toBeLessThanOrEqual(2);
        seen.push(...page.items.map((o: { id: string }) => o.id));
        cursor = page.next_cursor;
      } while (cursor);
      expect(seen).toEqual([...created].reverse());
    });

    it('moves an order along its status graph and refuses an illegal step with 409', async () => {
      const scene = await newScene();
      const order = await json(await request('POST', '/orders', { token: tokens.operator, body: orderBody(scene.id) }));
      const paused = await request('PATCH', `/orders/${order.id}`, {
        token: tokens.operator,
        body: { status: 'paused' },
      });
      expect(await json(paused)).toMatchObject({ status: 'paused' });
      const illegal = await request('PATCH', `/orders/${order.id}`, {
        token: tokens.operator,
        body: { status: 'completed' },
      });
      expect(illegal.status).toBe(409);
      expect(await json(illegal)).toMatchObject({
        code: 'invalid_transition',
        details: { from: 'paused', to: 'completed' },
      });
    });

    it('refuses to delete a scene an order uses with 409 naming the order', async () => {
      const scene = await newScene();
      const order = await json(
        await request('POST', '/orders', { token: tokens.operator, body: orderBody(scene.id, 'holds-scene') }),
      );
      const res = await request('DELETE', `/scenes/${scene.id}`, { token: tokens.operator });
      expect(res.status).toBe(409);
      expect(await json(res)).toMatchObject({
        code: 'referenced',
        details: { referenced_by: [{ type: 'order', id: order.id, name: 'holds-scene' }] },
      });
    });

    it('answers an unknown route with a 404 problem and echoes the request id', async () => {
      const res = await app.request('/api/v1/nothing', {
        headers: { 'x-request-id': 'my-req-1', authorization: `Bearer ${tokens.admin}` },
      });
      expect(res.status).toBe(404);
      expect(res.headers.get('x-request-id')).toBe('my-req-1');
      expect(await json(res)).toMatchObject({ code: 'route_not_found', request_id: 'my-req-1' });
    });
  });

  describe('Idempotency-Key', () => {
    it('replays the stored status and body with Idempotency-Replayed: true', async () => {
      const scene = await newScene();
      const key = uuidv7();
      const body = orderBody(scene.id, 'idem-replay');
      const first = await request('POST', '/orders', {
        token: tokens.operator,
        body,
        headers: { 'idempotency-key': key },
      });
      expect(first.status).toBe(201);
      expect(first.headers.get('idempotency-replayed')).toBeNull();
      const firstBody = await first.text();
      // Same key, same request (keys in another order, quoted key form): replayed, not re-run.
      const again = await request('POST', '/orders', {
        token: tokens.operator,
        body: { target_count: 10, name: 'idem-replay', scene_id: scene.id },
        headers: { 'idempotency-key': `"${key}"` },
      });
      expect(again.status).toBe(201);
      expect(again.headers.get('idempotency-replayed')).toBe('true');
      expect(again.headers.get('location')).toBe(first.headers.get('location'));
      expect(await again.text()).toBe(firstBody);
    });

    it('replays a stored 4xx too', async () => {
      const scene = await newScene();
      await request('POST', '/orders', { token: tokens.operator, body: orderBody(scene.id, 'idem-409') });
      const key = uuidv7();
      const first = await request('POST', '/orders', {
        token: tokens.operator,
        body: orderBody(scene.id, 'idem-409'),
        headers: { 'idempotency-key': key },
      });
      expect(first.status).toBe(409);
      const again = await request('POST', '/orders', {
        token: tokens.operator,
        body: orderBody(scene.id, 'idem-409'),
        headers: { 'idempotency-key': key },
      });
      expect(again.status).toBe(409);
      expect(again.headers.get('idempotency-replayed')).toBe('true');
    });

    it('answers 422 when the key is reused with another body, and 400 for a malformed key', async () => {
      const scene = await newScene();
      const key = uuidv7();
      await request('POST', '/orders', {
        token: tokens.operator,
        body: orderBody(scene.id, 'idem-a'),
        headers: { 'idempotency-key': key },
      });
      const other = await request('POST', '/orders', {
        token: tokens.operator,
        body: orderBody(scene.id, 'idem-b'),
        headers: { 'idempotency-key': key },
      });
      expect(other.status).toBe(422);
      expect(await json(other)).toMatchObject({ code: 'idempotency_key_reused' });
      const bad = await request('POST', '/orders', {
        token: tokens.operator,
        body: orderBody(scene.id),
        headers: { 'idempotency-key': 'x'.repeat(300) },
      });
      expect(bad.status).toBe(400);
      expect(await json(bad)).toMatchObject({ code: 'idempotency_key_invalid' });
    });

    it('answers 409 with Retry-After while the first request with the key is still in flight', async () => {
      const scene = await newScene();
      const key = uuidv7();
      const body = orderBody(scene.id, 'idem-in-flight');
      const production = system.processes.get('production')!.child;
      production.kill('SIGSTOP'); // the first request now waits on the service
      try {
        const first = request('POST', '/orders', { token: tokens.operator, body, headers: { 'idempotency-key': key } });
        // The first request holds the key once its claim is in the database; only then send the second.
        await waitFor(
          async () =>
            (
              await gatewayDb.db
                .selectFrom('idempotency_keys')
                .select('state')
                .where('idempotency_key', '=', key)
                .executeTakeFirst()
            )?.state === 'in_progress',
          { what: 'the first request to claim the key' },
        );
        const second = await request('POST', '/orders', {
          token: tokens.operator,
          body,
          headers: { 'idempotency-key': key },
        });
        expect(second.status).toBe(409);
        expect(second.headers.get('retry-after')).toMatch(/^\d+$/);
        expect(await json(second)).toMatchObject({ code: 'idempotency_in_flight' });
        production.kill('SIGCONT');
        expect((await first).status).toBe(201);
      } finally {
        production.kill('SIGCONT');
      }
    });

    it('creates one order from fifty concurrent identical requests', async () => {
      const scene = await newScene();
      const key = uuidv7();
      const body = orderBody(scene.id, 'idem-fifty');
      const responses = await Promise.all(
        Array.from({ length: 50 }, () =>
          request('POST', '/orders', { token: tokens.operator, body, headers: { 'idempotency-key': key } }),
        ),
      );
      const statuses = responses.map((r) => r.status);
      expect(statuses.every((s) => s === 201 || s === 409)).toBe(true);
      const ids = new Set(
        await Promise.all(responses.filter((r) => r.status === 201).map(async (r) => (await json(r)).id as string)),
      );
      expect(ids.size).toBe(1);
      const list = await json(await request('GET', `/orders?q=idem-fifty`, { token: tokens.operator }));
      expect(list.items).toHaveLength(1);
    });

    it('does not store a 5xx: with the service down the client retries the same key and gets one order', async () => {
      const scene = await newScene();
      const key = uuidv7();
      const body = orderBody(scene.id, 'idem-outage');
      await system.stop('production');
      const down = await request('POST', '/orders', {
        token: tokens.operator,
        body,
        headers: { 'idempotency-key': key },
      });
      expect(down.status).toBe(503);
      expect(await json(down)).toMatchObject({ code: 'unavailable' });
      await system.start(['production']);
      const retry = await request('POST', '/orders', {
        token: tokens.operator,
        body,
        headers: { 'idempotency-key': key },
      });
      expect(retry.status).toBe(201);
      expect(retry.headers.get('idempotency-replayed')).toBeNull();
    });

    it('never applies a command twice when the gateway died after the service committed', async () => {
      const scene = await newScene();
      const key = uuidv7();
      const body = orderBody(scene.id, 'idem-crash');
      const productionDb = system.infra.database('production', { max: 1 }).db;
      // A production that SIGKILLs itself right after a command commits, before it replies; a real
      // gateway process in front of it, whose lease on a key lapses 2 s after it dies.
      await system.stop('production');
      await system.start(['production'], { env: { FERRY_FAULTS: 'rpc.after_commit' } });
      const faulty = system.processes.get('production')!;
      await system.start(['gateway'], { env: { IDEMPOTENCY_LEASE_MS: '2000' } });
      const gateway = system.processes.get('gateway')!;
      const api = () => system.client(tokens.operator!)('POST', '/orders', body, { 'idempotency-key': key });
      try {
        const first = api().then(
          (res) => res.status,
          () => 'no response',
        );
        // The service committed the order and the command id, then died without a reply: the gateway
        // is still waiting for one (its RPC timeout is 10 s) when it is killed in turn.
        expect((await exitWithin(faulty)).signal).toBe('SIGKILL');
        expect(faulty.raw.join('\n')).toMatch(/fault injected at rpc.after_commit/);
        gateway.child.kill('SIGKILL');
        expect((await exitWithin(gateway)).signal).toBe('SIGKILL');
        expect(await first).toBe('no response');

        // What the crash left behind: the order, its command log entry, and a key never completed.
        const committed = (
          await sql<{ id: string }>`select id from orders where name = 'idem-crash'`.execute(productionDb)
        ).rows;
        expect(committed).toHaveLength(1);
        const claim = await gatewayDb.db
          .selectFrom('idempotency_keys')
          .select(['state', 'command_id', 'response_status'])
          .where('idempotency_key', '=', key)
          .executeTakeFirstOrThrow();
        expect(claim).toMatchObject({ state: 'in_progress', response_status: null });
        const logged = (
          await sql<{
            reply: { id: string };
          }>`select reply from command_log where command_id = ${claim.command_id}`.execute(productionDb)
        ).rows;
        expect(logged.map((r) => r.reply.id)).toEqual([committed[0]!.id]);

        // Both come back; the client retries with the same key (409 until the dead gateway's lease lapses).
        await system.start(['production']);
        await system.start(['gateway']);
        const retry = await waitFor(
          async () => {
            const res = await api();
            return res.body?.code !== 'idempotency_in_flight' && res;
          },
          { timeoutMs: 15_000, what: 'the dead gateway’s lease on the key to lapse' },
        );
        expect(retry.status).toBe(201);
        expect(retry.headers.get('idempotency-replayed')).toBeNull();
        expect(retry.body.id).toBe(committed[0]!.id); // the service's command log answered: the first result
        const replay = await api();
        expect(replay.headers.get('idempotency-replayed')).toBe('true');
        expect(replay.body.id).toBe(committed[0]!.id);
        const list = await json(await request('GET', `/orders?q=idem-crash`, { token: tokens.operator }));
        expect(list.items).toHaveLength(1);
      } finally {
        for (const proc of [faulty, gateway]) {
          if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill('SIGKILL');
        }
        if (!system.processes.has('production')) await system.start(['production']);
      }
    });
  });
});
