import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from '../logging/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { type HealthCheck, withTimeout } from './checks.js';

export interface ReadinessReport {
  status: 'ready' | 'unavailable';
  /** Names of the failed checks (or `starting` / `shutting_down`). */
  failed: string[];
  checks: Record<string, { ok: boolean; error?: string }>;
}

/** Runs every check at once, each bounded by `timeoutMs`. */
export async function evaluateReadiness(
  checks: readonly HealthCheck[],
  state: { phase: 'starting' | 'running' | 'stopping'; reason?: string },
  timeoutMs = 2_000,
): Promise<ReadinessReport> {
  const results = await Promise.all(
    checks.map(async (c) => {
      try {
        await withTimeout(c.check(), timeoutMs, c.name);
        return [c.name, { ok: true }] as const;
      } catch (err) {
        return [c.name, { ok: false, error: (err as Error).message }] as const;
      }
    }),
  );
  const checksOut = Object.fromEntries(results);
  const failed = results.filter(([, r]) => !r.ok).map(([n]) => n);
  if (state.phase === 'starting') failed.push('starting');
  if (state.phase === 'stopping') failed.push('shutting_down');
  if (state.phase === 'starting' && state.reason) checksOut.starting = { ok: false, error: state.reason };
  return { status: failed.length === 0 ? 'ready' : 'unavailable', failed, checks: checksOut };
}

export interface HealthServerOptions {
  port: number;
  host?: string;
  checks: readonly HealthCheck[];
  metrics: Metrics;
  logger: Logger;
}

/**
 * `/healthz` (alive), `/readyz` (every dependency answers; 503 naming those that do not) and
 * `/metrics` (Prometheus) for a service process.
 */
export class HealthServer {
  private server?: Server;
  private phase: 'starting' | 'running' | 'stopping' = 'starting';
  private reason?: string;

  constructor(private readonly options: HealthServerOptions) {}

  /** What readiness reports while booting, e.g. "waiting for postgres". */
  starting(reason: string): void {
    this.reason = reason;
  }

  markRunning(): void {
    this.phase = 'running';
    this.reason = undefined;
  }

  markStopping(): void {
    this.phase = 'stopping';
  }

  get port(): number {
    const addr = this.server?.address();
    return typeof addr === 'object' && addr ? addr.port : this.options.port;
  }

  async listen(): Promise<void> {
    this.server = createServer((req, res) => {
      this.route(req, res).catch((err) => {
        this.options.logger.error({ err }, 'health endpoint failed');
        if (!res.headersSent) res.writeHead(500).end();
      });
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(this.options.port, this.options.host ?? '0.0.0.0', resolve);
    });
  }

  async close(): Promise<void> {
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server!.close(() => resolve()));
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET') {
      res.writeHead(405, { allow: 'GET' }).end();
      return;
    }
    if (path === '/healthz') {
      json(res, 200, { status: 'ok' });
    } else if (path === '/readyz') {
      const report = await evaluateReadiness(this.options.checks, { phase: this.phase, reason: this.reason });
      json(res, report.status === 'ready' ? 200 : 503, report);
    } else if (path === '/metrics') {
      const body = await this.options.metrics.registry.metrics();
      res.writeHead(200, { 'content-type': this.options.metrics.registry.contentType }).end(body);
    } else {
      json(res, 404, { status: 'not_found' });
    }
  }
}

function json(res: ServerResponse, status: number, body: unknown) {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(body));
}
