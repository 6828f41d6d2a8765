import { isDomainError } from '@ferry/platform';
import type { Context } from 'hono';
import { problemBody, problemResponse } from './problem.js';

/**
 * Every error leaves the gateway as problem+json. Domain errors keep their code and details;
 * anything else is logged with the request id and answered as a bare 500, so no database or driver
 * message ever reaches a client.
 */
export function errorToResponse(err: unknown, c: Context): Response {
  const requestId = c.get('requestId') ?? 'unknown';
  if (isDomainError(err)) {
    const { errors, www_authenticate, retry_after_seconds, close_connection, ...details } = (err.details ??
      {}) as Record<string, unknown>;
    const headers: Record<string, string> = {};
    // The rest of an oversized body is never read: the connection cannot be reused, so say so, or a
    // keep-alive client sends its next request on a socket we are about to close.
    if (err.code === 'payload_too_large' || close_connection === true) headers.Connection = 'close';
    if (typeof www_authenticate === 'string') headers['WWW-Authenticate'] = www_authenticate;
    if (typeof retry_after_seconds === 'number') {
      headers['Retry-After'] = String(retry_after_seconds);
      details.retry_after_seconds = retry_after_seconds;
    }
    // An outage is logged once where it is detected (the dependency monitor), not once per request.
    if (err.code === 'unavailable') c.get('log')?.debug({ detail: err.message }, 'answered unavailable');
    if (err.code === 'upstream_timeout' || err.code === 'storage_error') {
      c.get('log')?.warn({ err }, 'downstream problem');
    }
    return problemResponse(
      problemBody(err.code, err.message, requestId, {
        errors: Array.isArray(errors) ? (errors as { path: string; message: string }[]) : undefined,
        details,
      }),
      { 'X-Request-Id': requestId, ...headers },
    );
  }
  c.get('log')?.error({ err }, 'unhandled error');
  return problemResponse(
    problemBody('internal', 'an unexpected error occurred; quote the request id when reporting it', requestId),
    {
      'X-Request-Id': requestId,
    },
  );
}
