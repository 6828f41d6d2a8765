import { createMetrics, evaluateReadiness } from '@ferry/platform';
import { silentLogger } from '@ferry/platform/testing';
import { validate } from '@readme/openapi-parser';
import { describe, expect, it } from 'vitest';
import { json } from '../../../../test/support/http.js';
import { createGateway } from '../gateway.js';
import type { IdempotencyStore } from '../idempotency/idempotency.store.js';
import { apiRoutes } from '../routes/index.js';

function gateway() {
  return createGateway({
    logger: silentLogger(),
    metrics: createMetrics('openapi-test'),
    rpc: () => undefined,
    idempotency: {} as IdempotencyStore, // never reached: these routes are public
    strategies: [],
    readiness: () => evaluateReadiness([], { phase: 'running' }),
    bodyLimitBytes: 1024,
    version: '0.0.0-test',
  });
}

describe('OpenAPI document', () => {
  it('is served without a token and validates as OpenAPI 3.1', async () => {
    const res = await gateway().request('/api/v1/openapi.json');
    expect(res.status).toBe(200);
    const doc = await json(res);
    expect(doc.openapi).toBe('3.1.0');
    const result = await validate(structuredClone(doc));
    expect(result.valid, JSON.stringify(result, null, 2)).toBe(true);
  });

  it('describes every route with its schemas, roles, errors and the Idempotency-Key header', async () => {
    const doc = await json(await gateway().request('/api/v1/openapi.json'));
    for (const route of apiRoutes) {
      const op = doc.paths[`/api/v1${route.path}`.replace(/\/:([a-z_]+)/g, '/{$1}')][route.method.toLowerCase()];
      expect(op.operationId).toBe(route.operationId);
      expect(op['x-roles']).toEqual(route.roles);
      expect(op.responses['401'].content['application/problem+json'].schema.$ref).toBe('#/components/schemas/Problem');
      if (route.idempotent) expect(op.parameters).toContainEqual({ $ref: '#/components/parameters/IdempotencyKey' });
    }
    const create = doc.paths['/api/v1/orders'].post;
    expect(create.requestBody.content['application/json'].schema.$ref).toMatch(/CreateOrderBody/);
    expect(create.responses['201'].content['application/json'].schema.$ref).toBe('#/components/schemas/Order');
    expect(create.responses['409']).toBeDefined();
    // Defaults make the input shape differ from the output: both are published.
    expect(
      doc.components.schemas.CreateOrderBodyInput?.required ?? doc.components.schemas.CreateOrderBody.required,
    ).not.toContain('priority');
    const list = doc.paths['/api/v1/orders'].get.parameters.map((p: { name: string }) => p.name);
    expect(list).toEqual(expect.arrayContaining(['limit', 'cursor', 'status', 'priority', 'scene_id', 'q']));
  });

  it('serves the docs page and its assets locally, with no third-party URL', async () => {
    const app = gateway();
    const page = await app.request('/api/v1/docs');
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).not.toMatch(/https?:\/\//);
    for (const src of html.match(/(?:src|href)="([^"]+)"/g) ?? []) {
      const url = src.replace(/^(src|href)="|"$/g, '');
      const asset = await app.request(url);
      expect(asset.status, url).toBe(200);
    }
    // Only the allow-listed files are served, whatever the (decoded) name asks for.
    expect((await app.request('/api/v1/docs/assets/..%2F..%2Fpackage.json')).status).toBe(404);
  });

  it('documents each problem type at the URI the problems carry', async () => {
    const res = await gateway().request('/api/v1/problems/name_taken');
    expect(await json(res)).toMatchObject({ code: 'name_taken', status: 409 });
    expect((await gateway().request('/api/v1/problems/nope')).status).toBe(404);
  });
});
