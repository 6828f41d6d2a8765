/**
 * The stable error codes every service may return and every client may branch on.
 * The gateway maps each code to one HTTP status in a single table (services/gateway/src/http/problem.ts);
 * services never speak HTTP. Adding a code is a contract change: document it in docs/api.md.
 */
export const ERROR_CODES = {
  validation_failed: 'The request does not match the schema; `errors` lists each bad field.',
  bad_request: 'The HTTP request itself is malformed (bad framing, bad encoding); nothing was run.',
  unauthenticated: 'No valid bearer token was presented.',
  forbidden: 'The caller is authenticated but its role may not do this.',
  not_found: 'No such resource in the caller’s organization.',
  reference_not_found: 'The body refers to a resource that does not exist in the caller’s organization.',
  route_not_found: 'No such route.',
  method_not_allowed: 'The route exists but not for this method.',
  conflict: 'The resource changed concurrently; re-read and retry.',
  name_taken: 'Another live resource in the organization already has this name.',
  referenced: 'The resource is still referenced; `details.referenced_by` names the referrers.',
  binding_taken: 'The device or data collector is already in another current workstation binding.',
  invalid_transition: 'The requested status change is not allowed from the current status.',
  invalid_state: 'The action is not allowed in the resource’s current status.',
  bulk_run_active:
    'The organization already has a bulk run queued or running; `details` carries its run_id and status.',
  quota_exceeded: 'The request would allocate more than the order’s target allows.',
  not_owner: 'The acting device does not own the resource.',
  idempotency_key_invalid: 'The Idempotency-Key header is malformed.',
  idempotency_key_reused: 'The Idempotency-Key was already used with a different request.',
  idempotency_in_flight: 'A request with this Idempotency-Key is still being processed; retry later.',
  request_timeout: 'The request was not received completely in time.',
  expectation_failed: 'The request’s Expect header asks for something other than 100-continue.',
  payload_too_large: 'The request body exceeds the size limit.',
  headers_too_large: 'The request headers exceed the size limit.',
  unsupported_media_type: 'The request body must be application/json.',
  unavailable: 'A dependency (database, message bus, service) is unavailable; retry after `Retry-After` seconds.',
  storage_error: 'The object store failed to read or write the data; nothing was recorded; retry later.',
  upstream_timeout: 'A downstream service did not answer in time; the command may still complete.',
  internal: 'An unexpected error; the request id identifies it in the logs.',
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export const ERROR_CODE_LIST = Object.keys(ERROR_CODES) as ErrorCode[];

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CODES, value);
}
