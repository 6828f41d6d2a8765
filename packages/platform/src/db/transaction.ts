import type { Kysely, Transaction } from 'kysely';

export type { Transaction } from 'kysely';

/** Postgres codes worth one more try: serialization failure, deadlock. */
const RETRYABLE = new Set(['40001', '40P01']);

export function isRetryableTransactionError(err: unknown): boolean {
  return typeof err === 'object' && err !== null && RETRYABLE.has((err as { code?: string }).code ?? '');
}

export function isUniqueViolation(err: unknown, constraint?: string): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const e = err as { code?: string; constraint?: string };
  return e.code === '23505' && (constraint === undefined || e.constraint === constraint);
}

export interface TransactionOptions {
  /** Extra attempts after a serialization failure or deadlock. Default 3. */
  retries?: number;
}

/** Runs `fn` in one transaction, retrying it whole on serialization failures and deadlocks. */
export async function inTransaction<DB, T>(
  db: Kysely<DB>,
  fn: (trx: Transaction<DB>) => Promise<T>,
  options: TransactionOptions = {},
): Promise<T> {
  const retries = options.retries ?? 3;
  for (let attempt = 0; ; attempt++) {
    try {
      return await db.transaction().execute(fn);
    } catch (err) {
      if (attempt < retries && isRetryableTransactionError(err)) continue;
      throw err;
    }
  }
}
