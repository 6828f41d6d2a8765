import { DomainError } from '@ferry/platform';
import type { MiddlewareHandler } from 'hono';

function decodes(text: string): boolean {
  try {
    decodeURIComponent(text.replaceAll('+', ' '));
    return true;
  } catch {
    return false;
  }
}

/**
 * Refuses a path or query that is not valid percent-encoded UTF-8 (`%E0%A4%A`, an encoded lone
 * surrogate, `%FF`) with a 400 naming it. Hono decodes leniently, keeping the raw text when decoding
 * fails, which would let such a value through as if it were literal.
 */
export function strictUrl(): MiddlewareHandler {
  return async (c, next) => {
    const url = c.req.url;
    const queryAt = url.indexOf('?');
    const pathname = new URL(url).pathname;
    if (!decodes(pathname)) {
      throw new DomainError('validation_failed', 'the path is not valid percent-encoded UTF-8', {
        errors: [{ path: 'path', message: 'is not valid percent-encoded UTF-8' }],
      });
    }
    if (queryAt >= 0) {
      const errors: { path: string; message: string }[] = [];
      for (const pair of url.slice(queryAt + 1).split('&')) {
        if (!pair) continue;
        const eq = pair.indexOf('=');
        const name = eq >= 0 ? pair.slice(0, eq) : pair;
        const value = eq >= 0 ? pair.slice(eq + 1) : '';
        if (!decodes(name) || !decodes(value)) {
          errors.push({
            path: `query.${decodes(name) ? decodeURIComponent(name) : '(undecodable name)'}`,
            message: 'is not valid percent-encoded UTF-8',
          });
        }
      }
      if (errors.length > 0) {
        throw new DomainError('validation_failed', 'the query is not valid percent-encoded UTF-8', { errors });
      }
    }
    await next();
  };
}
