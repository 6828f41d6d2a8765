import { z } from 'zod';

/** Entity ids are UUIDs (v7 for ids we mint, so they sort by creation time). */
export const Uuid = z.uuid();
export type Uuid = z.infer<typeof Uuid>;

/** RFC 3339 timestamp with an offset, as sent and received on the wire. */
export const Timestamp = z.iso.datetime({ offset: true });
export type Timestamp = z.infer<typeof Timestamp>;

/** A human-facing name: trimmed, 1–200 characters, no control characters. */
export const Name = z
  .string()
  .trim()
  .min(1)
  .max(200)
  .regex(/^[^\p{Cc}]*$/u, 'must not contain control characters');

export const Description = z.string().max(2000);

const METADATA_MAX_BYTES = 16 * 1024;

/** Free-form JSON object attached by clients; bounded so one row cannot grow without limit. */
export const Metadata = z
  .record(z.string(), z.unknown())
  .refine((value) => Buffer.byteLength(JSON.stringify(value)) <= METADATA_MAX_BYTES, {
    message: `must serialize to at most ${METADATA_MAX_BYTES} bytes`,
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
