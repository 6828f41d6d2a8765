import { isBlobError } from '../blob/blob-errors.js';
import { cameFromPostgres } from '../db/postgres-client.js';
import { DomainError } from '../errors/domain-error.js';
import type { Logger } from '../logging/logger.js';

/** The shared infrastructure a process can lose. */
export type Dependency = 'postgres' | 'nats' | 'blob_store';

/** Seconds a client is told to wait (Retry-After) while a dependency is down. */
export const OUTAGE_RETRY_AFTER_SECONDS = 2;

/** Seconds a client is told to wait (Retry-After) when every database connection of a process is busy. */
export const BUSY_RETRY_AFTER_SECONDS = 1;

// Socket-level failures: the server is not there (or went away mid-conversation). Anyone's socket
// error looks like this, so it counts only when the pg driver reported it (cameFromPostgres).
const SOCKET_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);
// SQLSTATEs of a server that is going away or not accepting connections: 08xxx (connection exception),
// 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now.
const PG_CONNECTION_STATES = /^(08...|57P0[123])$/;
// node-postgres and pg-pool report a lost or unobtainable connection with plain Errors, recognisable
// by their (own, exact) messages only. ("due to connection timeout": a new connection did not open in time.)
const PG_CONNECTION_MESSAGES =
  /^(Connection terminated( unexpectedly| due to connection timeout)?|Client has encountered a connection error and is not queryable)$/;
// pg-pool's message for a checkout that waited its whole connection timeout in the queue of a full pool:
// every connection is taken (by this process), which says nothing about the driver or the server.
const POOL_SATURATED_MESSAGE = 'timeout exceeded when trying to connect';

interface ChainLink {
  code?: unknown;
  message?: unknown;
  /** Reported by the pg driver, or wrapped by an error it reported. */
  pg: boolean;
}

function errorChain(err: unknown): ChainLink[] {
  const chain: ChainLink[] = [];
  let current: unknown = err;
  let pg = false;
  for (let i = 0; i < 5 && current && typeof current === 'object'; i++) {
    // A blob store error ends the chain, itself included: the socket error it wraps (ECONNREFUSED,
    // ETIMEDOUT) and its message (which quotes the cause's) are the object store's, never Postgres's.
    if (isBlobError(current)) break;
    pg ||= cameFromPostgres(current);
    const link = current as { code?: unknown; message?: unknown };
    chain.push({ code: link.code, message: link.message, pg });
    // AggregateError (a failed connect to several addresses) carries the socket errors in `errors`.
    const nested = (current as { errors?: unknown[] }).errors;
    if (Array.isArray(nested)) {
      for (const e of nested as { code?: unknown }[]) chain.push({ code: e?.code, pg: pg || cameFromPostgres(e) });
    }
    current = (current as { cause?: unknown }).cause;
  }
  return chain;
}

/**
 * True when `err` means "Postgres is unreachable or going away" rather than "this statement failed":
 * a connection error is an outage (503, retried), never a bug (500) or a domain outcome. Only what
 * came from the pg driver counts: a socket error of some other client (an HTTP call, the object
 * store) is not a Postgres outage, whatever its code.
 */
export function isPostgresConnectionError(err: unknown): boolean {
  return errorChain(err).some(
    (e) =>
      (e.pg && typeof e.code === 'string' && (SOCKET_CODES.has(e.code) || PG_CONNECTION_STATES.test(e.code))) ||
      (typeof e.message === 'string' && PG_CONNECTION_MESSAGES.test(e.message)),
  );
}

/**
 * True when `err` is a checkout that gave up waiting for a free connection of a full pool: this process is
 * busy, Postgres is not down. Answer it 503 `unavailable` (see `databaseBusy`), never as an outage.
 */
export function isPoolSaturated(err: unknown): boolean {
  return errorChain(err).some((e) => e.message === POOL_SATURATED_MESSAGE);
}

export interface DependencyMonitorOptions {
  logger: Logger;
  /**
   * How to tell a dependency is back, per dependency; probed every `probeIntervalMs` while it is
   * down. A dependency without a probe (NATS: its client reports reconnects) is marked up with `up()`.
   */
  probes?: Partial<Record<Dependency, () => Promise<unknown>>>;
  /** Between probes while a dependency is down. Default 1000 ms. */
  probeIntervalMs?: number;
}

/**
 * Knows which shared dependencies are down, so a process can answer an outage fast and truthfully (503
 * with Retry-After, not a 10 s timeout or a 500) and log it once: one warning when a dependency goes
 * away, one line when it returns — not a stack trace per request.
 */
export class DependencyMonitor {
  private readonly downSince = new Map<Dependency, number>();
  private readonly timers = new Map<Dependency, NodeJS.Timeout>();
  private closed = false;

  constructor(private readonly options: DependencyMonitorOptions) {}

  isDown(dep: Dependency): boolean {
    return this.downSince.has(dep);
  }

  /** Marks `dep` down (a warning the first time) and starts probing for its return. */
  down(dep: Dependency, reason: unknown): void {
    if (this.closed || this.downSince.has(dep)) return;
    this.downSince.set(dep, Date.now());
    const message = reason instanceof Error ? reason.message : String(reason);
    this.options.logger.warn(
      { dependency: dep, reason: message },
      `${dep} is unavailable; answering 503 and retrying until it returns`,
    );
    this.scheduleProbe(dep);
  }

  /** Marks `dep` up again (one line, with how long it was down). */
  up(dep: Dependency): void {
    const since = this.downSince.get(dep);
    if (since === undefined) return;
    this.downSince.delete(dep);
    clearTimeout(this.timers.get(dep));
    this.timers.delete(dep);
    this.options.logger.warn({ dependency: dep, down_ms: Date.now() - since }, `${dep} is available again`);
  }

  /**
   * Classifies an error from a database call: a Postgres connection error marks Postgres down and
   * comes back as a DomainError `unavailable` (with `retry_after_seconds`) for the caller to throw; a
   * saturated pool comes back `unavailable` too, with nothing marked down or logged (Postgres is up);
   * anything else comes back unchanged.
   */
  classify(err: unknown): unknown {
    if (err instanceof DomainError) return err;
    if (isPoolSaturated(err)) return databaseBusy(err);
    if (!isPostgresConnectionError(err)) return err;
    this.down('postgres', err);
    return unavailable('postgres', err);
  }

  /** Throws `unavailable` at once when `dep` is known to be down (fail fast instead of waiting out a timeout). */
  assertUp(dep: Dependency): void {
    if (this.isDown(dep)) throw unavailable(dep);
  }

  close(): void {
    this.closed = true;
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }

  private scheduleProbe(dep: Dependency): void {
    const probe = this.options.probes?.[dep];
    if (!probe || this.closed) return;
    const timer = setTimeout(() => {
      probe().then(
        () => this.up(dep),
        () => {
          if (this.downSince.has(dep)) this.scheduleProbe(dep);
        },
      );
    }, this.options.probeIntervalMs ?? 1_000);
    timer.unref();
    this.timers.set(dep, timer);
  }
}

/** The `unavailable` domain error for a dependency that is down (503 with Retry-After at the gateway). */
export function unavailable(dep: Dependency, cause?: unknown): DomainError {
  return new DomainError(
    'unavailable',
    `${dep === 'blob_store' ? 'the object store' : dep} is unavailable; retry later`,
    { dependency: dep, retry_after_seconds: OUTAGE_RETRY_AFTER_SECONDS },
    cause === undefined ? undefined : { cause },
  );
}

/**
 * The `unavailable` domain error for a request that found every database connection of its process busy (503
 * with Retry-After at the gateway). No `dependency` in its details: nothing is down, the process is at capacity.
 */
export function databaseBusy(cause?: unknown): DomainError {
  return new DomainError(
    'unavailable',
    'too busy to take this request now; retry later',
    { reason: 'busy', retry_after_seconds: BUSY_RETRY_AFTER_SECONDS },
    cause === undefined ? undefined : { cause },
  );
}
