import { createHash } from 'node:crypto';
import { DomainError } from '@ferry/platform';

const QUOTED = /^"([\x20\x21\x23-\x5b\x5d-\x7e]{1,255})"$/; // sf-string without escapes
const BARE = /^[\x21\x23-\x5b\x5d-\x7e]{1,255}$/;

/**
 * The Idempotency-Key header: an RFC 8941 string (`"…"`), or for convenience the bare value
 * (`Idempotency-Key: 5f1c…`). 1–255 printable characters. Absent → undefined (the request runs
 * without replay protection); malformed → 400.
 */
export function parseIdempotencyKey(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const value = header.trim();
  const key = QUOTED.exec(value)?.[1] ?? (BARE.test(value) ? value : undefined);
  if (!key) {
    throw new DomainError(
      'idempotency_key_invalid',
      'Idempotency-Key must be 1–255 printable characters, optionally quoted',
    );
  }
  return key;
}

function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, canonical((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}

/** sha256 of the validated request, with object keys sorted: key order never makes two bodies differ. */
export function fingerprintOf(request: {
  method: string;
  path: string;
  params: unknown;
  query: unknown;
  body: unknown;
}): string {
  return createHash('sha256')
    .update(JSON.stringify(canonical(request)))
    .digest('hex');
}

export function scopeHashOf(scope: { org: string; sub: string; method: string; route: string; key: string }): string {
  return createHash('sha256')
    .update(JSON.stringify([scope.org, scope.sub, scope.method, scope.route, scope.key]))
    .digest('hex');
}
