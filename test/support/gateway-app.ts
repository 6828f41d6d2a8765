import {
  createGateway,
  EventStreamHub,
  type GatewayDB,
  IdempotencyStore,
  jwtStrategy,
  StreamTickets,
} from '@ferry/gateway';
import {
  type BlobStore,
  createMetrics,
  type Database,
  evaluateReadiness,
  type Logger,
  RpcClient,
} from '@ferry/platform';
import { silentLogger } from '@ferry/platform/testing';
import type { Hono } from 'hono';
import type { System } from './system.js';

export interface RequestOptions {
  token?: string;
  body?: unknown;
  headers?: Record<string, string>;
}

/**
 * The gateway app in this process (driven with `app.request()`, no server), talking over the test
 * namespace's NATS to the real services the System started, with its own idempotency store.
 */
export function inProcessGateway(
  system: System,
  options: {
    bodyLimitBytes?: number;
    events?: EventStreamHub;
    /** Where the part PUT route writes (the local store); default none, as on an S3 installation. */
    blobStore?: BlobStore;
    /** Default silent. */
    logger?: Logger;
  } = {},
) {
  const logger = options.logger ?? silentLogger();
  const rpc = new RpcClient({ nc: system.infra.nc, ns: system.infra.ns, logger, timeoutMs: 30_000 });
  const gatewayDb: Database<GatewayDB> = system.infra.database<GatewayDB>('gateway');
  const metrics = createMetrics('gateway-test');
  const events = options.events ?? new EventStreamHub({}, metrics);
  const app: Hono = createGateway({
    logger,
    metrics,
    events,
    tickets: new StreamTickets({ secret: system.jwtSecret }),
    jetstream: () => ({ js: system.infra.js, jsm: system.infra.jsm, ns: system.infra.ns }),
    rpc: () => rpc,
    idempotency: new IdempotencyStore(gatewayDb.db),
    strategies: [jwtStrategy(system.jwtSecret)],
    readiness: () => evaluateReadiness([], { phase: 'running' }),
    bodyLimitBytes: options.bodyLimitBytes ?? 64 * 1024,
    ...(options.blobStore ? { blobStore: options.blobStore } : {}),
    version: 'test',
  });
  function request(method: string, path: string, opts: RequestOptions = {}): Promise<Response> {
    const headers: Record<string, string> = { ...opts.headers };
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    if (opts.body !== undefined) headers['content-type'] ??= 'application/json';
    return Promise.resolve(
      app.request(`/api/v1${path}`, {
        method,
        headers,
        body:
          opts.body === undefined ? undefined : typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body),
      }),
    );
  }
  return { app, request, gatewayDb, events };
}
