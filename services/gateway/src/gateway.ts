import './http/context.js';
import { isErrorCode } from '@ferry/contracts';
import { DomainError, type Logger, type Metrics, type ReadinessReport, type RpcClient } from '@ferry/platform';
import { Hono } from 'hono';
import { authenticate, type BearerStrategy } from './auth/authenticate.js';
import { errorToResponse } from './http/error-response.js';
import { describeProblem, problemBody, problemResponse } from './http/problem.js';
import { mountRoutes } from './http/route.js';
import type { IdempotencyStore } from './idempotency/idempotency.store.js';
import { requestContext } from './middleware/request-id.js';
import { mountDocs } from './openapi/docs-page.js';
import { buildOpenApiDocument } from './openapi/openapi-document.js';
import { apiRoutes } from './routes/index.js';

export interface GatewayDeps {
  logger: Logger;
  metrics: Metrics;
  /** The RPC client, or undefined while NATS is not connected yet. */
  rpc: () => RpcClient | undefined;
  idempotency: IdempotencyStore;
  strategies: readonly BearerStrategy[];
  readiness: () => Promise<ReadinessReport>;
  bodyLimitBytes: number;
  version: string;
}

/** The HTTP API: health, docs, then every /api/v1 route behind bearer auth. */
export function createGateway(deps: GatewayDeps): Hono {
  const app = new Hono();
  app.use('*', requestContext({ logger: deps.logger, metrics: deps.metrics }));

  // Public: health, the API description, and the problem type pages it links to.
  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', async (c) => {
    const report = await deps.readiness();
    c.header('Cache-Control', 'no-store');
    return c.json(report, report.status === 'ready' ? 200 : 503);
  });
  app.get('/metrics', async (c) =>
    c.body(await deps.metrics.registry.metrics(), 200, { 'content-type': deps.metrics.registry.contentType }),
  );
  const document = buildOpenApiDocument(apiRoutes, { version: deps.version });
  app.get('/api/v1/openapi.json', (c) => c.json(document));
  mountDocs(app);
  app.get('/api/v1/problems/:code', (c) => {
    const code = c.req.param('code');
    if (!isErrorCode(code)) return c.notFound();
    return c.json(describeProblem(code));
  });

  app.use('/api/v1/*', authenticate({ strategies: deps.strategies }));
  mountRoutes(app, apiRoutes, {
    rpc: () => {
      const client = deps.rpc();
      if (!client) throw new DomainError('unavailable', 'the gateway is not connected to NATS yet');
      return client;
    },
    idempotency: deps.idempotency,
    bodyLimitBytes: deps.bodyLimitBytes,
  });

  app.notFound((c) =>
    problemResponse(
      problemBody('route_not_found', `no route ${c.req.method} ${c.req.path}`, c.get('requestId') ?? 'unknown'),
      {
        'X-Request-Id': c.get('requestId') ?? 'unknown',
      },
    ),
  );
  app.onError((err, c) => errorToResponse(err, c));
  return app;
}
