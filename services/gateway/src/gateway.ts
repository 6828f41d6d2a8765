import { randomBytes } from 'node:crypto';
import './http/context.js';
import { isErrorCode } from '@ferry/contracts';
import {
  type BlobStore,
  type DependencyMonitor,
  type Logger,
  type Metrics,
  type ReadinessReport,
  type RpcClient,
  unavailable,
} from '@ferry/platform';
import { Hono } from 'hono';
import type { BearerStrategy } from './auth/authenticate.js';
import { StreamTickets } from './auth/stream-ticket.js';
import { errorToResponse } from './http/error-response.js';
import { MethodTable } from './http/method-table.js';
import { describeProblem, problemBody, problemResponse } from './http/problem.js';
import { API_BASE, type JetStreamAccess, mountRoutes, toHonoPath } from './http/route.js';
import type { IdempotencyStore } from './idempotency/idempotency.store.js';
import { requestContext } from './middleware/request-id.js';
import { strictUrl } from './middleware/strict-url.js';
import { mountDocs } from './openapi/docs-page.js';
import { buildOpenApiDocument } from './openapi/openapi-document.js';
import { mountOpsPages, OPS_PAGE_PATHS } from './ops/ops-pages.js';
import { apiRoutes } from './routes/index.js';
import { EventStreamHub } from './sse/event-stream.js';

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
  /**
   * Knows which dependencies are down: an infrastructure error (a lost database connection) becomes
   * `unavailable` (503 with Retry-After) and is logged once per outage.
   */
  monitor?: DependencyMonitor;
  /** Where upload parts of the local store are written (the part PUT route); absent: that route answers 409. */
  blobStore?: BlobStore;
  /**
   * Signs and checks the stream tickets of event streams (main.ts: a key derived from FERRY_JWT_SECRET,
   * so every replica accepts every replica's tickets). Default: a random key, valid in this process only.
   */
  tickets?: StreamTickets;
  /** JetStream, or undefined while NATS is not connected yet (event streams answer 503 meanwhile). */
  jetstream?: () => JetStreamAccess | undefined;
  /** The event streams' settings and registry; by default one with the default settings, counted in `metrics`. */
  events?: EventStreamHub;
}

/** The HTTP API: health, docs, then every /api/v1 route behind bearer auth. */
export function createGateway(deps: GatewayDeps): Hono {
  const app = new Hono();
  const methods = new MethodTable();
  const classifyError = (err: unknown) => deps.monitor?.classify(err) ?? err;
  const events = deps.events ?? new EventStreamHub({}, deps.metrics);
  app.use('*', requestContext({ logger: deps.logger, metrics: deps.metrics }));
  app.use('*', strictUrl());

  // Public: health, the API description, and the problem type pages it links to. Metrics are served
  // on the ops port (HEALTH_PORT), never anonymously here.
  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', async (c) => {
    const report = await deps.readiness();
    c.header('Cache-Control', 'no-store');
    return c.json(report, report.status === 'ready' ? 200 : 503);
  });
  const document = buildOpenApiDocument(apiRoutes, { version: deps.version });
  app.get('/api/v1/openapi.json', (c) => c.json(document));
  mountDocs(app);
  mountOpsPages(app);
  app.get('/api/v1/problems/:code', (c) => {
    const code = c.req.param('code');
    if (!isErrorCode(code)) return c.notFound();
    return c.json(describeProblem(code));
  });

  mountRoutes(app, apiRoutes, {
    rpc: () => {
      const client = deps.rpc();
      if (!client) {
        throw unavailable('nats');
      }
      return client;
    },
    strategies: deps.strategies,
    idempotency: deps.idempotency,
    bodyLimitBytes: deps.bodyLimitBytes,
    classifyError,
    blobStore: deps.blobStore,
    tickets: deps.tickets ?? new StreamTickets({ secret: randomBytes(32).toString('hex') }),
    events,
    jetstream: () => {
      const access = deps.jetstream?.();
      if (!access) {
        throw unavailable('nats');
      }
      return access;
    },
  });

  for (const path of ['/healthz', '/readyz', '/api/v1/openapi.json', '/api/v1/docs', '/api/v1/docs/init.js']) {
    methods.add('GET', path);
  }
  methods.add('GET', '/api/v1/docs/assets/:file');
  methods.add('GET', '/api/v1/problems/:code');
  for (const path of OPS_PAGE_PATHS) methods.add('GET', path);
  for (const route of apiRoutes) methods.add(route.method, toHonoPath(`${API_BASE}${route.path}`));

  app.notFound((c) => {
    const requestId = c.get('requestId') ?? 'unknown';
    const allowed = methods.allowed(c.req.path);
    // A route that answers this method but found nothing (an unknown problem code) is a plain 404.
    if (allowed.length > 0 && !allowed.includes(c.req.method)) {
      return problemResponse(
        problemBody('method_not_allowed', `${c.req.path} does not answer ${c.req.method}`, requestId, {
          details: { allowed_methods: allowed },
        }),
        { 'X-Request-Id': requestId, Allow: allowed.join(', ') },
      );
    }
    return problemResponse(problemBody('route_not_found', `no route ${c.req.method} ${c.req.path}`, requestId), {
      'X-Request-Id': requestId,
    });
  });
  app.onError((err, c) => errorToResponse(classifyError(err), c));
  return app;
}
