import { type Actor, findUnstorable, INPUT_LIMITS, type Role, type RpcCallContext } from '@ferry/contracts';
import { DomainError, type Logger, type RpcClient } from '@ferry/platform';
import type { Context, Hono } from 'hono';
import type { z } from 'zod';
import type { IdempotencyStore } from '../idempotency/idempotency.store.js';
import { fingerprintOf, parseIdempotencyKey } from '../idempotency/idempotency-key.js';
import { errorToResponse } from './error-response.js';
import { readJsonBody } from './json-body.js';

export const API_BASE = '/api/v1';

export type HttpMethod = 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE';

export interface RouteResult {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export interface RouteContext {
  actor: Actor;
  requestId: string;
  /** The RPC context for downstream calls: carries the request id and, under an Idempotency-Key, the command id. */
  call: RpcCallContext;
  rpc: RpcClient;
  log: Logger;
}

type AnySchema = z.ZodType;
type Infer<S> = S extends z.ZodType ? z.infer<S> : undefined;

export interface RouteDefinition<
  P extends AnySchema | undefined = any,
  Q extends AnySchema | undefined = any,
  B extends AnySchema | undefined = any,
> {
  method: HttpMethod;
  /** Hono-style path under /api/v1, e.g. `/orders/:id`. */
  path: string;
  operationId: string;
  summary: string;
  description?: string;
  tags: readonly string[];
  /** Roles allowed to call it; others get 403. */
  roles: readonly Role[];
  params?: P;
  query?: Q;
  body?: B;
  /** Success responses (errors are documented from the route's traits). */
  responses: Readonly<Record<number, { description: string; schema?: AnySchema }>>;
  /** Extra error statuses this route can answer, for the docs (e.g. 409 for a name conflict). */
  errors?: Readonly<Record<number, string>>;
  /** Honour Idempotency-Key (POST/PATCH command routes). */
  idempotent?: boolean;
  /** Body size limit; defaults to BODY_LIMIT_BYTES. */
  maxBodyBytes?: number;
  handle(input: { params: Infer<P>; query: Infer<Q>; body: Infer<B> }, ctx: RouteContext): Promise<RouteResult>;
}

export function defineRoute<
  P extends AnySchema | undefined,
  Q extends AnySchema | undefined,
  B extends AnySchema | undefined,
>(def: RouteDefinition<P, Q, B>): RouteDefinition<P, Q, B> {
  return def;
}

export const ok = (body: unknown): RouteResult => ({ status: 200, body });
export const created = (body: unknown, location?: string): RouteResult => ({
  status: 201,
  body,
  ...(location ? { headers: { Location: location } } : {}),
});
export const noContent = (): RouteResult => ({ status: 204 });

export interface MountOptions {
  /** The RPC client once NATS is connected; throws `unavailable` before that. */
  rpc: () => RpcClient;
  idempotency: IdempotencyStore;
  bodyLimitBytes: number;
  /** Turns infrastructure errors into domain errors (a lost database connection → `unavailable`). */
  classifyError?: (err: unknown) => unknown;
}

type FieldErrors = { path: string; message: string }[];

function parsePart(
  location: 'path' | 'query' | 'body',
  schema: AnySchema | undefined,
  value: unknown,
  errors: FieldErrors,
): unknown {
  if (!schema) return undefined;
  // Before the schema, and for every route alike: nothing Postgres cannot hold (NUL, unpaired
  // surrogates) and nothing nested deep enough to threaten a recursive walk further down.
  const unstorable = findUnstorable(value, { maxDepth: INPUT_LIMITS.bodyMaxDepth });
  if (unstorable) {
    errors.push({ path: [location, ...unstorable.path.map(String)].join('.'), message: unstorable.message });
    return undefined;
  }
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  for (const issue of result.error.issues) {
    const keys = issue.code === 'unrecognized_keys' ? issue.keys.map((k) => [...issue.path, k]) : [issue.path];
    for (const path of keys) {
      errors.push({
        path: [location, ...path.map(String)].join('.'),
        message:
          issue.code === 'unrecognized_keys'
            ? 'unknown field'
            : issue.code === 'invalid_type' && /received undefined$/.test(issue.message)
              ? 'required'
              : issue.message,
      });
    }
  }
  return undefined;
}

function toResponse(c: Context, result: RouteResult): Response {
  for (const [k, v] of Object.entries(result.headers ?? {})) c.header(k, v);
  if (result.body === undefined) return c.body(null, result.status as 204);
  return c.json(result.body as object, result.status as 200);
}

async function execute(route: RouteDefinition, c: Context, options: MountOptions): Promise<Response> {
  const actor = c.get('actor');
  if (!actor.role || !route.roles.includes(actor.role)) {
    throw new DomainError('forbidden', `the ${actor.role ?? 'device'} role may not ${route.summary.toLowerCase()}`, {
      required_roles: route.roles,
    });
  }
  const errors: FieldErrors = [];
  const params = parsePart('path', route.params, declaredParams(c), errors);
  const rawQuery = singleValuedQuery(c, errors);
  if (!route.query) {
    for (const name of Object.keys(rawQuery)) errors.push({ path: `query.${name}`, message: 'unknown parameter' });
  }
  const query = parsePart('query', route.query, rawQuery, errors);
  const body = route.body
    ? parsePart('body', route.body, await readJsonBody(c, route.maxBodyBytes ?? options.bodyLimitBytes), errors)
    : undefined;
  if (errors.length > 0) {
    throw new DomainError('validation_failed', `the request has ${errors.length} invalid field(s)`, { errors });
  }

  const requestId = c.get('requestId');
  const key = route.idempotent ? parseIdempotencyKey(c.req.header('idempotency-key')) : undefined;
  const ctx = (commandId?: string): RouteContext => ({
    actor,
    requestId,
    call: { request_id: requestId, actor, ...(commandId ? { command_id: commandId } : {}) },
    rpc: options.rpc(),
    log: c.get('log'),
  });
  if (!key) return toResponse(c, await route.handle({ params, query, body } as never, ctx()));

  const claim = await options.idempotency.claim({
    org: actor.org,
    sub: actor.sub,
    method: route.method,
    route: route.path,
    key,
    fingerprint: fingerprintOf({ method: route.method, path: c.req.path, params, query, body }),
  });
  if (claim.kind === 'replay') {
    return new Response(claim.body, {
      status: claim.status,
      headers: { ...claim.headers, 'Idempotency-Replayed': 'true' },
    });
  }
  if (claim.kind === 'mismatch') {
    throw new DomainError('idempotency_key_reused', 'this Idempotency-Key was used with a different request', {
      idempotency_key: key,
    });
  }
  if (claim.kind === 'in_flight') {
    throw new DomainError('idempotency_in_flight', 'a request with this Idempotency-Key is still in progress', {
      idempotency_key: key,
      retry_after_seconds: claim.retryAfterSeconds,
    });
  }

  let response: Response;
  try {
    response = toResponse(c, await route.handle({ params, query, body } as never, ctx(claim.commandId)));
  } catch (err) {
    response = errorToResponse(options.classifyError?.(err) ?? err, c);
  }
  if (response.status >= 500) {
    // Not stored: the client may retry, and the retry reuses this command id downstream.
    await options.idempotency.release(claim.scopeHash);
    return response;
  }
  const text = response.body ? await response.clone().text() : '';
  const headers: Record<string, string> = {};
  for (const name of ['content-type', 'location']) {
    const v = response.headers.get(name);
    if (v) headers[name] = v;
  }
  await options.idempotency.complete(claim.scopeHash, { status: response.status, headers, body: text });
  return response;
}

/**
 * Every query parameter is single-valued (lists are comma-separated: `status=a,b`), so a repeated one
 * (`?limit=200&limit=abc`) is refused rather than half-read.
 */
function singleValuedQuery(c: Context, errors: FieldErrors): Record<string, string> {
  const query: Record<string, string> = {};
  for (const [name, values] of Object.entries(c.req.queries())) {
    if (values.length > 1) {
      errors.push({
        path: `query.${name}`,
        message: `given ${values.length} times; give each query parameter once (lists are comma-separated)`,
      });
    }
    query[name] = values[0] ?? '';
  }
  return query;
}

const LITERAL_PARAM = 'literal_';

/**
 * Hono reads a colon inside a segment (`tasks:bulk`, Google-style custom methods) as a parameter;
 * such segments become regex parameters that match only the literal text.
 */
export function toHonoPath(path: string): string {
  return path
    .split('/')
    .map((segment, i) =>
      segment.includes(':') && !segment.startsWith(':')
        ? `:${LITERAL_PARAM}${i}{${segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}}`
        : segment,
    )
    .join('/');
}

/** Path parameters the route declared (without the literal segments above). */
function declaredParams(c: Context): Record<string, string> {
  return Object.fromEntries(Object.entries(c.req.param()).filter(([k]) => !k.startsWith(LITERAL_PARAM)));
}

/** Registers every route on `app` under /api/v1 (behind the auth middleware mounted there). */
export function mountRoutes(app: Hono, routes: readonly RouteDefinition[], options: MountOptions): void {
  for (const route of routes) {
    app.on(route.method, toHonoPath(`${API_BASE}${route.path}`), (c) => execute(route, c, options));
  }
}
