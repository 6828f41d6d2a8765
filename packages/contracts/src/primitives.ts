import { z } from 'zod';

/**
 * What a client may send that the database can hold (docs/api.md "Limits"). Postgres refuses NUL in
 * text and jsonb, silently rewrites unpaired UTF-16 surrogates, and has a narrower timestamp range than
 * JavaScript; these limits keep every such value out at the edge with a 400 naming the field.
 */
export const INPUT_LIMITS = {
  /** Nesting depth of any request body (objects and arrays). */
  bodyMaxDepth: 32,
  /** Nesting depth of free-form JSON (`metadata`). */
  jsonMaxDepth: 16,
  /** Serialized size of free-form JSON (`metadata`), in UTF-8 bytes. */
  jsonMaxBytes: 16 * 1024,
  /** Timestamps: RFC 3339 with an offset, years 0001–9999 in UTC, at most microsecond precision. */
  timestampMin: '0001-01-01T00:00:00Z',
  timestampMax: '9999-12-31T23:59:59.999999Z',
} as const;

export interface UnstorableValue {
  /** Where it is, from the root: `['items', 3, 'name']`. */
  path: (string | number)[];
  message: string;
}

// Node 20 has String.prototype.isWellFormed (ES2024); the ES2023 lib typings do not declare it.
const isWellFormed = (s: string): boolean => (s as unknown as { isWellFormed(): boolean }).isWellFormed();

/** Why a string cannot be stored as Postgres text, or undefined when it can. */
export function textProblem(s: string): string | undefined {
  if (s.includes('\u0000')) return 'must not contain NUL characters';
  if (!isWellFormed(s)) return 'must be valid Unicode (it contains an unpaired UTF-16 surrogate)';
  return undefined;
}

/**
 * The first value in a parsed JSON document that Postgres cannot hold (a NUL or an unpaired surrogate
 * in a string or a key) or that nests deeper than `maxDepth`. Iterative, so a document nested 100,000
 * levels deep is refused instead of overflowing the stack.
 */
export function findUnstorable(root: unknown, options: { maxDepth: number }): UnstorableValue | undefined {
  const stack: { value: unknown; path: (string | number)[]; depth: number }[] = [{ value: root, path: [], depth: 0 }];
  while (stack.length > 0) {
    const { value, path, depth } = stack.pop()!;
    if (typeof value === 'string') {
      const problem = textProblem(value);
      if (problem) return { path, message: problem };
      continue;
    }
    if (value === null || typeof value !== 'object') continue;
    if (depth >= options.maxDepth) {
      return { path, message: `nests deeper than ${options.maxDepth} levels` };
    }
    if (Array.isArray(value)) {
      for (let i = value.length - 1; i >= 0; i--) stack.push({ value: value[i], path: [...path, i], depth: depth + 1 });
      continue;
    }
    for (const [key, child] of Object.entries(value)) {
      const problem = textProblem(key);
      if (problem) return { path: [...path, key], message: `key ${problem}` };
      stack.push({ value: child, path: [...path, key], depth: depth + 1 });
    }
  }
  return undefined;
}

/** UTF-8 size of `JSON.stringify(value)`, computed without recursion; stops counting past `limit`. */
export function jsonByteLength(root: unknown, limit = Number.POSITIVE_INFINITY): number {
  let size = 0;
  const stack: unknown[] = [root];
  while (stack.length > 0 && size <= limit) {
    const value = stack.pop();
    if (typeof value === 'string') size += Buffer.byteLength(JSON.stringify(value));
    else if (value === null || typeof value === 'number' || typeof value === 'boolean') size += String(value).length;
    else if (Array.isArray(value)) {
      size += 2 + Math.max(0, value.length - 1);
      for (const item of value) stack.push(item === undefined ? null : item);
    } else if (typeof value === 'object') {
      const entries = Object.entries(value as object).filter(([, v]) => v !== undefined);
      size += 2 + Math.max(0, entries.length - 1);
      for (const [key, child] of entries) {
        size += Buffer.byteLength(JSON.stringify(key)) + 1;
        stack.push(child);
      }
    }
  }
  return size;
}

/** Entity ids are UUIDs (v7 for ids we mint, so they sort by creation time). */
export const Uuid = z.uuid();
export type Uuid = z.infer<typeof Uuid>;

const TIMESTAMP_MIN_MS = Date.parse(INPUT_LIMITS.timestampMin);
const TIMESTAMP_MAX_MS = Date.parse('9999-12-31T23:59:59.999Z');
const FRACTION = /\.(\d+)/;

/**
 * RFC 3339 timestamp with an offset, as sent and received on the wire. Limited to what both Postgres
 * (`timestamptz`, microseconds) and our replies (`toISOString`, four-digit years) can represent: a
 * value Postgres would round past 9999 would come back unreadable.
 */
export const Timestamp = z.iso
  .datetime({ offset: true })
  .refine((s) => (FRACTION.exec(s)?.[1]?.length ?? 0) <= 6, 'at most 6 fractional digits (microseconds)')
  .refine((s) => {
    const ms = Date.parse(s);
    return ms >= TIMESTAMP_MIN_MS && ms <= TIMESTAMP_MAX_MS;
  }, `must lie between ${INPUT_LIMITS.timestampMin} and ${INPUT_LIMITS.timestampMax}`);
export type Timestamp = z.infer<typeof Timestamp>;

/** A human-facing name: trimmed, 1–200 characters, no control characters. */
export const Name = z
  .string()
  .trim()
  .min(1)
  .max(200)
  .regex(/^[^\p{Cc}]*$/u, 'must not contain control characters');

export const Description = z.string().max(2000);

/**
 * Free-form JSON object attached by clients: at most INPUT_LIMITS.jsonMaxBytes serialized and
 * INPUT_LIMITS.jsonMaxDepth levels deep, text Postgres can hold. Checked without recursion.
 */
export const Metadata = z.record(z.string(), z.unknown()).superRefine((value, ctx) => {
  const unstorable = findUnstorable(value, { maxDepth: INPUT_LIMITS.jsonMaxDepth });
  if (unstorable) {
    ctx.addIssue({ code: 'custom', path: unstorable.path, message: unstorable.message });
    return;
  }
  if (jsonByteLength(value, INPUT_LIMITS.jsonMaxBytes) > INPUT_LIMITS.jsonMaxBytes) {
    ctx.addIssue({ code: 'custom', message: `must serialize to at most ${INPUT_LIMITS.jsonMaxBytes} bytes` });
  }
});
export type Metadata = z.infer<typeof Metadata>;

/** Query-string list: `a,b,c` → ['a','b','c'] (deduplicated, at most 50 items). */
export function commaList<T extends z.ZodType<string, string>>(item: T) {
  return z
    .string()
    .max(4096)
    .transform((raw) => [
      ...new Set(
        raw
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean),
      ),
    ])
    .pipe(z.array(item).min(1).max(50));
}
