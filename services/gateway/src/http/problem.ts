import { ERROR_CODES, type ErrorCode, type Problem } from '@ferry/contracts';

/** The one table that turns domain error codes into HTTP statuses (DESIGN §4). */
export const STATUS_OF: Record<ErrorCode, number> = {
  validation_failed: 400,
  bad_request: 400,
  idempotency_key_invalid: 400,
  unauthenticated: 401,
  forbidden: 403,
  not_owner: 403,
  not_found: 404,
  route_not_found: 404,
  method_not_allowed: 405,
  conflict: 409,
  name_taken: 409,
  referenced: 409,
  binding_taken: 409,
  invalid_transition: 409,
  invalid_state: 409,
  quota_exceeded: 409,
  bulk_run_active: 409,
  idempotency_in_flight: 409,
  request_timeout: 408,
  expectation_failed: 417,
  payload_too_large: 413,
  headers_too_large: 431,
  unsupported_media_type: 415,
  reference_not_found: 422,
  idempotency_key_reused: 422,
  internal: 500,
  storage_error: 502,
  unavailable: 503,
  upstream_timeout: 504,
};

const TITLES: Partial<Record<ErrorCode, string>> = {
  validation_failed: 'Invalid request',
  unauthenticated: 'Authentication required',
  forbidden: 'Forbidden',
  not_found: 'Not found',
  internal: 'Internal error',
};

function titleOf(code: ErrorCode): string {
  return TITLES[code] ?? code.replaceAll('_', ' ').replace(/^./, (c) => c.toUpperCase());
}

/** Problem types are documented at /api/v1/problems/<code> (a relative URI, RFC 9457 §3.1.1). */
export function problemType(code: ErrorCode): string {
  return `/api/v1/problems/${code}`;
}

export function problemBody(
  code: ErrorCode,
  detail: string,
  requestId: string,
  extra: { errors?: Problem['errors']; details?: Record<string, unknown> } = {},
): Problem {
  const body: Problem = {
    type: problemType(code),
    title: titleOf(code),
    status: STATUS_OF[code],
    detail,
    code,
    request_id: requestId,
  };
  if (extra.errors && extra.errors.length > 0) body.errors = extra.errors;
  if (extra.details && Object.keys(extra.details).length > 0) body.details = extra.details;
  return body;
}

export function problemResponse(body: Problem, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status: body.status,
    headers: { 'content-type': 'application/problem+json', ...headers },
  });
}

export function describeProblem(code: ErrorCode): {
  code: ErrorCode;
  status: number;
  title: string;
  description: string;
} {
  return { code, status: STATUS_OF[code], title: titleOf(code), description: ERROR_CODES[code] };
}
