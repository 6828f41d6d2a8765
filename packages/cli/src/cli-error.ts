import type { ErrorCode } from '@ferry/contracts';
import { ConfigError, DomainError } from '@ferry/platform';

/** A failure the CLI explains in one line, exiting with `exitCode` (1: it did not work; 2: bad usage). */
export class CliError extends Error {
  override readonly name = 'CliError';
  readonly exitCode: number;
  constructor(message: string, options: ErrorOptions & { exitCode?: number } = {}) {
    super(message, options);
    this.exitCode = options.exitCode ?? 1;
  }
}

/** What to add to a service's own message, per error code, so the one line says what to do. */
const HINT: Partial<Record<ErrorCode, string>> = {
  unavailable: 'is the system running? (npm start)',
  upstream_timeout: 'it may still complete; check before running it again',
  unauthenticated: 'ask an admin for a new one',
};

function validationLine(err: DomainError): string {
  const errors = (err.details?.errors ?? []) as { path?: string; message?: string }[];
  const first = errors
    .slice(0, 3)
    .map((e) => `${e.path ?? '?'}: ${e.message ?? 'invalid'}`)
    .join('; ');
  return first ? `${err.message} (${first})` : err.message;
}

/**
 * One line for any failure: a domain error's message (the services write them for people) with a hint
 * for the codes that need one; the code itself is kept for scripts that grep it.
 */
export function describeFailure(err: unknown): string {
  if (err instanceof CliError || err instanceof ConfigError) return err.message;
  if (err instanceof DomainError) {
    const text = err.code === 'validation_failed' ? validationLine(err) : err.message;
    const hint = HINT[err.code];
    return `${text}${hint ? `: ${hint}` : ''} [${err.code}]`;
  }
  return err instanceof Error ? err.message : String(err);
}

export function exitCodeOf(err: unknown): number {
  return err instanceof CliError ? err.exitCode : 1;
}
