import type { ErrorCode } from '@ferry/contracts';

/**
 * A business outcome a caller can act on: a stable code, a message safe to show, and details.
 * Services throw these; the gateway maps the code to an HTTP status, the messaging adapter to
 * ack/term. Anything that is not a DomainError is a bug or an outage and is never shown to clients.
 */
export class DomainError extends Error {
  override readonly name = 'DomainError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export function isDomainError(err: unknown): err is DomainError {
  return err instanceof DomainError;
}

export const notFound = (what: string, id: string) =>
  new DomainError('not_found', `${what} ${id} was not found`, { resource: what.toLowerCase(), id });
