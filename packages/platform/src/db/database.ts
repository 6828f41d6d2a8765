import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { DependencyMonitor } from '../health/dependency-monitor.js';
import { isPostgresConnectionError } from '../health/dependency-monitor.js';
import type { Logger } from '../logging/logger.js';
import { PostgresClient } from './postgres-client.js';

// timestamptz comes back as Date (pg default); bigint (int8) as string: we keep counts in int4.

export interface DatabaseOptions {
  url: string;
  /** Every connection's search_path: the service's own schema, so queries and migrations stay unqualified. */
  schema: string;
  /** Pool size. Default 10. */
  max?: number;
  applicationName: string;
  logger: Logger;
  /**
   * How long a checkout waits for a connection: a new one to open, or, when all `max` are taken, one to be
   * released. Default 5 s; past it the caller gets an error (an outage, or a saturated pool: see
   * isPoolSaturated) rather than waiting on.
   */
  connectionTimeoutMs?: number;
  /** Abort a single statement after this long. Default 30 s; protects the pool from stuck queries. */
  statementTimeoutMs?: number;
  /** Told when idle connections die because Postgres went away (one warning per outage, not one per client). */
  monitor?: DependencyMonitor;
}

export interface Database<DB> {
  readonly db: Kysely<DB>;
  readonly pool: pg.Pool;
  readonly schema: string;
  close(): Promise<void>;
}

export function createPool(options: DatabaseOptions): pg.Pool {
  const pool = new pg.Pool({
    // Its connection errors are marked as Postgres's: only those may be classified as an outage.
    Client: PostgresClient,
    connectionString: options.url,
    max: options.max ?? 10,
    application_name: options.applicationName,
    // Quoted so a namespaced schema name never needs escaping; `public` stays reachable for extensions.
    options: `-c search_path="${options.schema}",public -c statement_timeout=${options.statementTimeoutMs ?? 30_000}`,
    connectionTimeoutMillis: options.connectionTimeoutMs ?? 5_000,
    idleTimeoutMillis: 30_000,
  });
  const onClientError = (err: Error) => {
    if (options.monitor && isPostgresConnectionError(err)) options.monitor.down('postgres', err);
    else options.logger.warn({ err }, 'postgres client error');
  };
  // An idle client losing its connection emits on the pool; without a listener the process would crash.
  pool.on('error', onClientError);
  // A client checked out of the pool (a transaction waiting on NATS, say) has no pool listener: when
  // Postgres goes away it would emit an unhandled 'error' and take the process down. Its next query
  // fails instead ("not queryable"), which callers see as an outage.
  pool.on('connect', (client) => client.on('error', onClientError));
  return pool;
}

export function createDatabase<DB>(options: DatabaseOptions): Database<DB> {
  const pool = createPool(options);
  const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
  let closed = false;
  return {
    db,
    pool,
    schema: options.schema,
    async close() {
      if (closed) return;
      closed = true;
      await db.destroy(); // ends the pool
    },
  };
}
