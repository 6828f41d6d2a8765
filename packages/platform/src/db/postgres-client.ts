import pg from 'pg';

// Errors the pg driver handed us. A socket error (ECONNREFUSED, ECONNRESET…) looks the same whoever
// met it, so only these may be read as "Postgres is unreachable" (see isPostgresConnectionError).
const fromPostgres = new WeakSet<object>();

function mark<E>(err: E): E {
  if (typeof err === 'object' && err !== null) fromPostgres.add(err);
  return err;
}

/**
 * True for an error from Postgres or the pg driver: one the server sent (a DatabaseError, whatever
 * the client), or one a PostgresClient reported about its connection (a failed connect, a lost socket).
 */
export function cameFromPostgres(err: unknown): boolean {
  return err instanceof pg.DatabaseError || (typeof err === 'object' && err !== null && fromPostgres.has(err));
}

/**
 * pg's Client, marking every error it reports about its connection so that classification can tell
 * them from anyone else's socket errors. Connect failures reach the caller through `connect`; a
 * connection that fails later is emitted as `error` before pg fails the queries in flight with that
 * same error (on the next tick), so those queries see it marked too.
 */
export class PostgresClient extends pg.Client {
  override connect(): Promise<pg.Client>;
  override connect(callback: ((err: Error) => void) | ((err: null, c: pg.Client) => void)): void;
  override connect(callback?: unknown): Promise<pg.Client> | undefined {
    if (typeof callback === 'function') {
      const done = callback as (err: Error | null, client?: pg.Client) => void;
      super.connect((err: Error | null, client?: pg.Client) => done(mark(err), client));
      return undefined;
    }
    return super.connect().catch((err: unknown) => {
      throw mark(err);
    });
  }

  override emit(event: string | symbol, ...args: unknown[]): boolean {
    if (event === 'error') mark(args[0]);
    return super.emit(event, ...args);
  }
}
