import { ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { type Actor, findUnstorable, INPUT_LIMITS, type Role, type RpcCallContext } from '@ferry/contracts';
import { type BlobStore, DomainError, type Logger, type Namespace, type RpcClient } from '@ferry/platform';
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type { Context, Hono } from 'hono';
import type { z } from 'zod';
import { authenticateHeader, type BearerStrategy } from '../auth/authenticate.js';
import { STREAM_TICKET, type StreamTickets } from '../auth/stream-ticket.js';
import type { IdempotencyStore } from '../idempotency/idempotency.store.js';
import { fingerprintOf, parseIdempotencyKey } from '../idempotency/idempotency-key.js';
import type { EventSourceHandle, EventStreamHub } from '../sse/event-stream.js';
import { NodeResponseSink, WebStreamSink } from '../sse/sse-sink.js';
import { asBodyReference } from './body-reference.js';
import { errorToResponse } from './error-response.js';
import { readJsonBody } from './json-body.js';

export const API_BASE = '/api/v1';

export type HttpMethod = 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE';

/**
 * The kinds of route, which share auth, parameter validation, problem+json errors and the OpenAPI
 * document: `json` (a validated JSON body in, a JSON result out), `stream` (the request body is a byte
 * stream handed to the handler unread — never buffered — e.g. an upload part), `events` (the handler
 * answers with a long-lived text/event-stream response).
 */
export type RouteKind = 'json' | 'stream' | 'events';

/**
 * `bearer`: a valid token is required (401 otherwise). `optional`: a token is checked when one is sent
 * (a signed URL, say, authorizes the request by itself). `none`: no token is read at all. `ticket`: a
 * bearer token, or else a stream ticket in `?ticket=` issued for the resource `ticketScope` names (for
 * browsers' EventSource, which cannot send headers); a bearer token is never read from the URL.
 */
export type RouteAuth = 'bearer' | 'optional' | 'none' | 'ticket';

export type ActorKind = Actor['kind'];

export interface RouteResult {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

/** The actor of calls made without a token (signed URLs, pairing): the service checks what it needs itself. */
export const ANONYMOUS: Actor = {
  kind: 'system',
  sub: 'anonymous',
  org: '00000000-0000-0000-0000-000000000000',
  role: null,
};

/** JetStream for routes that read streams themselves (the SSE relay), on this installation's namespace. */
export interface JetStreamAccess {
  js: JetStreamClient;
  jsm: JetStreamManager;
  ns: Namespace;
}

export interface RouteContext {
  /** The caller; ANONYMOUS on routes with auth `none`/`optional` called without a token. */
  actor: Actor;
  requestId: string;
  /** The RPC context for downstream calls: carries the request id and, under an Idempotency-Key, the command id. */
  call: RpcCallContext;
  rpc: RpcClient;
  log: Logger;
  /** The raw request: `stream` routes read its body, `events` routes its headers and abort signal. */
  request: Request;
  /** The API's origin as the client reached it (`https://ferry.example.com`), for absolute URLs. */
  origin: string;
  /** `stream` routes: the request body as a Node stream, read with backpressure, never buffered. */
  bodyStream(): Readable;
  /** The blob store, where this gateway writes upload parts itself (local store); undefined otherwise. */
  blobStore?: BlobStore;
  /** Issues stream tickets (`auth: 'ticket'` routes accept them). */
  tickets: StreamTickets;
  /** JetStream once NATS is connected; throws `unavailable` before that. */
  jetstream(): JetStreamAccess;
  /** The gateway's event streams (`events` routes count what they hold here). */
  events: EventStreamHub;
}

/** What an `events` route answers once its checks passed: the source of its text/event-stream. */
export interface EventStreamResult {
  readonly eventStream: EventSourceHandle;
}

export const eventStream = (source: EventSourceHandle): EventStreamResult => ({ eventStream: source });

function isEventStream(result: unknown): result is EventStreamResult {
  return typeof result === 'object' && result !== null && 'eventStream' in result;
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
  /** Default `json`. */
  kind?: RouteKind;
  /** Default `bearer`. */
  auth?: RouteAuth;
  /** Who may call it: users (by `roles`) and/or devices. Default users only. */
  actors?: readonly ActorKind[];
  /** Roles of users allowed to call it; others get 403. */
  roles: readonly Role[];
  params?: P;
  query?: Q;
  /** JSON routes only; a `stream` route documents its body with `streamBody`. */
  body?: B;
  /** For the docs: the media type and description of a `stream` route's body. */
  streamBody?: { contentType: string; description: string };
  /** `auth: 'ticket'` routes: the resource a ticket must name to open this request, from the raw path parameters. */
  ticketScope?: (params: Record<string, string>) => string;
  /** `events` routes, for the docs: each event name the stream sends and the schema of its `data`. */
  events?: readonly { name: string; description: string; schema?: AnySchema }[];
  /** Success responses (errors are documented from the route's traits). */
  responses: Readonly<
    Record<number, { description: string; schema?: AnySchema; contentType?: string; headers?: Record<string, string> }>
  >;
  /** Extra error statuses this route can answer, for the docs (e.g. 409 for a name conflict). */
  errors?: Readonly<Record<number, string>>;
  /**
   * Honour Idempotency-Key (POST/PATCH command routes): `true` for every request, or a predicate over the validated
   * input for a route that is a command only for some bodies (a preview on the same route is a query: its answer is
   * never stored, so a key sent with it can neither replay stale counts nor block the command that follows).
   */
  idempotent?: boolean | ((input: { params: Infer<P>; query: Infer<Q>; body: Infer<B> }) => boolean);
  /** Body size limit; defaults to BODY_LIMIT_BYTES. */
  maxBodyBytes?: number;
  handle(
    input: { params: Infer<P>; query: Infer<Q>; body: Infer<B> },
    ctx: RouteContext,
  ): Promise<RouteResult | Response | EventStreamResult>;
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
  /** Bearer strategies, tried by token shape. */
  strategies: readonly BearerStrategy[];
  idempotency: IdempotencyStore;
  bodyLimitBytes: number;
  /** Turns infrastructure errors into domain errors (a lost database connection → `unavailable`). */
  classifyError?: (err: unknown) => unknown;
  blobStore?: BlobStore;
  /** Signs and checks stream tickets. */
  tickets: StreamTickets;
  /** Every open event stream (`events` routes): heartbeat, queue limits, metrics, shutdown. */
  events: EventStreamHub;
  /** JetStream once NATS is connected; throws `unavailable` before that. */
  jetstream: () => JetStreamAccess;
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

/**
 * The `events` kind: headers for proxies (no buffering, no transform), then frames written to the Node
 * response ourselves rather than through Hono's streamSSE, whose `write` swallows errors and has no
 * backpressure signal: here a client that stops reading is seen (`write` → false, no `drain`) and
 * dropped by its bounded queue (sse/event-stream.ts).
 */
function openEventStream(c: Context, result: EventStreamResult, hub: EventStreamHub): Response {
  const requestId = c.get('requestId');
  const headers = {
    'Content-Type': 'text/event-stream; charset=utf-8',
    'Cache-Control': 'no-cache, no-transform',
    'X-Accel-Buffering': 'no',
    Connection: 'keep-alive',
    'X-Request-Id': requestId,
  };
  const log = c.get('log');
  const outgoing = (c.env as { outgoing?: unknown } | undefined)?.outgoing;
  if (outgoing instanceof ServerResponse) {
    hub.connect(new NodeResponseSink(outgoing, 200, headers), result.eventStream, log, c.req.raw.signal);
    // @hono/node-server leaves a response with this header alone: the bytes are already ours to write.
    return new Response(null, { headers: { 'x-hono-already-sent': 'true' } });
  }
  const sink = new WebStreamSink();
  hub.connect(sink, result.eventStream, log, c.req.raw.signal);
  return new Response(sink.readable, { status: 200, headers });
}

function toResponse(c: Context, result: RouteResult | Response | EventStreamResult, options: MountOptions): Response {
  if (result instanceof Response) return result;
  if (isEventStream(result)) return openEventStream(c, result, options.events);
  for (const [k, v] of Object.entries(result.headers ?? {})) c.header(k, v);
  if (result.body === undefined) return c.body(null, result.status as 204);
  return c.json(result.body as object, result.status as 200);
}

/** Who is calling, per the route's auth mode; 401 when a required or offered token is not valid. */
async function identify(route: RouteDefinition, c: Context, options: MountOptions): Promise<Actor> {
  const mode = route.auth ?? 'bearer';
  const header = c.req.header('authorization');
  if (mode === 'none' || (mode === 'optional' && header === undefined)) return ANONYMOUS;
  if (mode === 'ticket' && header === undefined) {
    const tickets = c.req.queries('ticket') ?? [];
    if (tickets.length === 0) {
      throw new DomainError('unauthenticated', 'send Authorization: Bearer <token>, or a stream ticket as ?ticket=', {
        www_authenticate: 'Bearer realm="ferry"',
      });
    }
    if (!route.ticketScope) throw new Error(`route ${route.operationId} takes tickets but names no ticketScope`);
    return options.tickets.verify(tickets[0]!, route.ticketScope(declaredParams(c)));
  }
  return authenticateHeader(header, options.strategies);
}

/** 403 unless this kind of actor (and, for users, this role) may call the route. */
function authorize(route: RouteDefinition, actor: Actor): void {
  if (actor === ANONYMOUS) return;
  const kinds = route.actors ?? ['user'];
  if (!kinds.includes(actor.kind)) {
    throw new DomainError(
      'forbidden',
      actor.kind === 'device'
        ? `a device token may not ${route.summary.toLowerCase()}; use an operator token`
        : `only a device may ${route.summary.toLowerCase()}; use the device's token`,
      { allowed_actors: kinds },
    );
  }
  if (actor.kind === 'user' && (!actor.role || !route.roles.includes(actor.role))) {
    throw new DomainError('forbidden', `the ${actor.role} role may not ${route.summary.toLowerCase()}`, {
      required_roles: route.roles,
    });
  }
}

/**
 * The request body as a Node stream. On @hono/node-server that is the IncomingMessage itself (no
 * web-stream round trip on a multi-GB upload); elsewhere (app.request in tests) the web body converted.
 */
function bodyStream(c: Context): Readable {
  const incoming = (c.env as { incoming?: unknown } | undefined)?.incoming;
  if (incoming instanceof Readable) return incoming;
  const body = c.req.raw.body;
  return body ? Readable.fromWeb(body as import('node:stream/web').ReadableStream) : Readable.from([]);
}

/** The origin the client used (behind a proxy: X-Forwarded-Proto / X-Forwarded-Host when sane). */
function originOf(c: Context): string {
  const url = new URL(c.req.url);
  const proto = c.req.header('x-forwarded-proto');
  const host = c.req.header('x-forwarded-host');
  if (proto && /^https?$/.test(proto) && host && /^[A-Za-z0-9.-]+(:\d+)?$/.test(host)) return `${proto}://${host}`;
  return url.origin;
}

/** Runs the route's handler; a body reference it could not find is the request's fault (asBodyReference). */
async function handle(
  route: RouteDefinition,
  input: { params: unknown; query: unknown; body: unknown },
  ctx: RouteContext,
): Promise<RouteResult | Response | EventStreamResult> {
  try {
    return await route.handle(input as never, ctx);
  } catch (err) {
    throw asBodyReference(err, input);
  }
}

async function execute(route: RouteDefinition, c: Context, options: MountOptions): Promise<Response> {
  if (route.kind === 'events' && !options.events.accepting) {
    throw new DomainError('unavailable', 'this gateway is shutting down; reconnect', { retry_after_seconds: 1 });
  }
  const actor = await identify(route, c, options);
  c.set('actor', actor);
  authorize(route, actor);
  const errors: FieldErrors = [];
  const params = parsePart('path', route.params, declaredParams(c), errors);
  const rawQuery = singleValuedQuery(c, errors);
  if ((route.auth ?? 'bearer') === 'ticket' && 'ticket' in rawQuery) {
    // The route layer's own parameter; checked here even when a bearer token decided who is calling.
    if (!STREAM_TICKET.test(rawQuery.ticket!)) {
      errors.push({ path: 'query.ticket', message: 'must be a stream ticket (fet_…)' });
    }
    delete rawQuery.ticket;
  }
  if (!route.query) {
    for (const name of Object.keys(rawQuery)) errors.push({ path: `query.${name}`, message: 'unknown parameter' });
  }
  const query = parsePart('query', route.query, rawQuery, errors);
  const body =
    route.body && (route.kind ?? 'json') === 'json'
      ? parsePart('body', route.body, await readJsonBody(c, route.maxBodyBytes ?? options.bodyLimitBytes), errors)
      : undefined;
  if (errors.length > 0) {
    throw new DomainError('validation_failed', `the request has ${errors.length} invalid field(s)`, { errors });
  }

  const requestId = c.get('requestId');
  // A route that takes a key checks it on every request (a malformed one is a 400 even on a preview, as the
  // document says), and stores the answer only for the requests that are commands.
  const parsedKey = route.idempotent ? parseIdempotencyKey(c.req.header('idempotency-key')) : undefined;
  const honoursKey =
    typeof route.idempotent === 'function' ? route.idempotent({ params, query, body } as never) : route.idempotent;
  const key = honoursKey ? parsedKey : undefined;
  const ctx = (commandId?: string): RouteContext => ({
    actor,
    requestId,
    call: { request_id: requestId, actor, ...(commandId ? { command_id: commandId } : {}) },
    rpc: options.rpc(),
    log: c.get('log'),
    request: c.req.raw,
    origin: originOf(c),
    bodyStream: () => bodyStream(c),
    blobStore: options.blobStore,
    tickets: options.tickets,
    jetstream: options.jetstream,
    events: options.events,
  });
  const input = { params, query, body };
  if (!key) return toResponse(c, await handle(route, input, ctx()), options);

  const claim = await options.idempotency.claim({
    org: actor.org,
    // A device's keys belong to its record: one registered again under a deleted device's device_id must not
    // be answered with the first one's stored responses.
    sub: actor.device?.id ?? actor.sub,
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
    response = toResponse(c, await handle(route, input, ctx(claim.commandId)), options);
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

/** Registers every route on `app` under /api/v1; each authenticates per its `auth` mode. */
export function mountRoutes(app: Hono, routes: readonly RouteDefinition[], options: MountOptions): void {
  for (const route of routes) {
    app.on(route.method, toHonoPath(`${API_BASE}${route.path}`), (c) => execute(route, c, options));
  }
}
