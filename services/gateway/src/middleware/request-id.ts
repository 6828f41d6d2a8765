import type { Logger, Metrics } from '@ferry/platform';
import { newId, runWithTrace } from '@ferry/platform';
import type { MiddlewareHandler } from 'hono';
import { routePath } from 'hono/route';

const SANE_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const PROBES = new Set(['/healthz', '/readyz', '/metrics']);

export interface RequestContextOptions {
  logger: Logger;
  metrics: Metrics;
}

/**
 * Gives every request an id (the caller's X-Request-Id when it is sane), runs the rest of the
 * request inside a trace carrying it (so RPCs and log lines in every service share it), echoes it
 * back, and logs and counts the response.
 */
export function requestContext(options: RequestContextOptions): MiddlewareHandler {
  return async (c, next) => {
    const offered = c.req.header('x-request-id');
    const requestId = offered && SANE_ID.test(offered) ? offered : newId();
    const log = options.logger.child({ request_id: requestId });
    c.set('requestId', requestId);
    c.set('log', log);
    const started = performance.now();
    await runWithTrace({ requestId }, () => next());
    c.header('X-Request-Id', requestId);
    const route = routePath(c) || 'unmatched';
    const seconds = (performance.now() - started) / 1000;
    options.metrics.httpRequests.inc({ method: c.req.method, route, status: String(c.res.status) });
    options.metrics.httpDuration.observe({ method: c.req.method, route }, seconds);
    // Probes (/healthz, /readyz, /metrics every few seconds) would drown the access log at info.
    const level = PROBES.has(c.req.path) && c.res.status < 500 ? 'debug' : 'info';
    log[level](
      { method: c.req.method, path: c.req.path, route, status: c.res.status, duration_ms: Math.round(seconds * 1000) },
      'request',
    );
  };
}
