import { DomainError } from '@ferry/platform';
import type { Context } from 'hono';

const JSON_TYPE = /^application\/([a-z0-9.+-]+\+)?json\s*(;.*)?$/i;

/**
 * Reads a JSON body of at most `limit` bytes: 415 for another media type, 413 past the limit
 * (checked on Content-Length and again while reading), 400 for malformed JSON. An absent body is
 * `undefined`, which the route's schema then rejects with a field-level message.
 */
export async function readJsonBody(c: Context, limit: number): Promise<unknown> {
  const length = Number(c.req.header('content-length') ?? Number.NaN);
  if (!c.req.raw.body || length === 0) return undefined;
  const type = c.req.header('content-type') ?? '';
  if (!JSON_TYPE.test(type)) {
    throw new DomainError(
      'unsupported_media_type',
      `send the body as application/json (got ${type || 'no content type'})`,
    );
  }
  const tooLarge = () =>
    new DomainError('payload_too_large', `the body exceeds ${limit} bytes`, { limit_bytes: limit });
  if (Number.isFinite(length) && length > limit) throw tooLarge();
  const reader = c.req.raw.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      throw tooLarge();
    }
    chunks.push(value);
  }
  let text: string;
  try {
    // Strict: invalid UTF-8 is refused, never silently stored as U+FFFD.
    text = new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks));
  } catch {
    throw new DomainError('validation_failed', 'the body is not valid UTF-8', {
      errors: [{ path: 'body', message: 'must be UTF-8 encoded JSON' }],
    });
  }
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new DomainError('validation_failed', 'the body is not valid JSON', {
      errors: [{ path: 'body', message: (err as Error).message }],
    });
  }
}
