import { DomainError } from '../errors/domain-error.js';

/**
 * Opaque keyset cursors: the sort key of the last item of a page, base64url-encoded JSON. Opaque to
 * clients (they pass `next_cursor` back unchanged) and stable under inserts, unlike offsets.
 */
export function encodeCursor(key: Record<string, string | number>): string {
  return Buffer.from(JSON.stringify(key)).toString('base64url');
}

export function decodeCursor<K extends Record<string, string | number>>(
  cursor: string,
  isKey: (value: unknown) => value is K,
): K {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    value = undefined;
  }
  if (!isKey(value)) {
    throw new DomainError('validation_failed', 'cursor is not one this API returned', {
      errors: [{ path: 'query.cursor', message: 'must be a next_cursor returned by a previous page' }],
    });
  }
  return value;
}

/** Splits a `limit + 1` fetch into the page and the cursor for the next one. */
export function toPage<Row, Item>(
  rows: readonly Row[],
  limit: number,
  map: (row: Row) => Item,
  keyOf: (row: Row) => Record<string, string | number>,
): { items: Item[]; next_cursor: string | null } {
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  return {
    items: page.map(map),
    next_cursor: rows.length > limit && last ? encodeCursor(keyOf(last)) : null,
  };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The common cursor: newest first by UUIDv7 id. */
export function isIdCursor(value: unknown): value is { id: string } {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { id?: unknown }).id === 'string' &&
    UUID.test((value as { id: string }).id)
  );
}
