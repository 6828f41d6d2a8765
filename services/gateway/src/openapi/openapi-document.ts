import { ERROR_CODE_LIST, FieldError, Problem } from '@ferry/contracts';
import { z } from 'zod';
import { problemType, STATUS_OF } from '../http/problem.js';
import { API_BASE, type RouteDefinition } from '../http/route.js';

type JsonSchema = Record<string, unknown>;

const REF = '#/components/schemas/';

/** Component schemas from every schema with a `.meta({ id })`, split where input and output differ. */
function components(): { schemas: Record<string, JsonSchema>; inputName: (id: string) => string } {
  const generate = (io: 'input' | 'output', uri: (id: string) => string) =>
    z.toJSONSchema(z.globalRegistry, { target: 'draft-2020-12', io, unrepresentable: 'any', uri }).schemas as Record<
      string,
      JsonSchema
    >;
  const strip = (s: JsonSchema) => {
    const { $schema: _s, $id: _i, ...rest } = s;
    return rest;
  };
  const output = generate('output', (id) => `${REF}${id}`);
  const firstInput = generate('input', (id) => `${REF}${id}`);
  const differs = new Set(
    Object.keys(output).filter((id) => JSON.stringify(strip(output[id]!)) !== JSON.stringify(strip(firstInput[id]!))),
  );
  const inputName = (id: string) => (differs.has(id) ? `${id}Input` : id);
  const input = generate('input', (id) => `${REF}${inputName(id)}`);
  const schemas: Record<string, JsonSchema> = {};
  for (const [id, s] of Object.entries(output)) schemas[id] = strip(s);
  for (const id of differs) schemas[inputName(id)] = strip(input[id]!);
  return { schemas, inputName };
}

interface ComponentNames {
  inputName: (id: string) => string;
  /** Every registered schema id (each is a component). */
  ids: ReadonlySet<string>;
}

function schemaFor(schema: z.ZodType, io: 'input' | 'output', { inputName, ids }: ComponentNames): JsonSchema {
  const ref = (id: string) => `${REF}${io === 'input' ? inputName(id) : id}`;
  const id = z.globalRegistry.get(schema)?.id;
  if (id) return { $ref: ref(id) };
  const {
    $schema: _,
    $defs,
    ...rest
  } = z.toJSONSchema(schema, {
    target: 'draft-2020-12',
    io,
    unrepresentable: 'any',
  }) as JsonSchema & { $defs?: Record<string, JsonSchema> };
  // An anonymous schema that embeds registered ones (`{items: [DeviceTokenInfo]}`) gets them as local
  // `#/$defs/…`, which dangle once the schema is placed inside the document: point them at the components.
  if (!$defs) return rest;
  const registered = new Set(Object.keys($defs).filter((d) => ids.has(d)));
  const local = Object.fromEntries(Object.entries($defs).filter(([d]) => !registered.has(d)));
  const rewritten = JSON.parse(
    JSON.stringify(rest).replace(/"#\/\$defs\/([^"]+)"/g, (m, d: string) =>
      registered.has(d) ? JSON.stringify(ref(d)) : m,
    ),
  ) as JsonSchema;
  return Object.keys(local).length > 0 ? { ...rewritten, $defs: local } : rewritten;
}

function parameters(route: RouteDefinition): JsonSchema[] {
  const out: JsonSchema[] = [];
  for (const [where, schema] of [
    ['path', route.params],
    ['query', route.query],
  ] as const) {
    if (!schema) continue;
    const json = z.toJSONSchema(schema, { target: 'draft-2020-12', io: 'input', unrepresentable: 'any' }) as {
      properties?: Record<string, JsonSchema>;
      required?: string[];
    };
    for (const [name, s] of Object.entries(json.properties ?? {})) {
      const { description, ...rest } = s as JsonSchema & { description?: string };
      out.push({
        name,
        in: where,
        required: where === 'path' || (json.required ?? []).includes(name),
        ...(description ? { description } : {}),
        schema: rest,
      });
    }
  }
  return out;
}

function errorStatuses(route: RouteDefinition): Record<number, string> {
  const out: Record<number, string> = {
    400: 'The request is invalid; `errors` names each bad field.',
    401: 'No valid bearer token.',
    403: 'The caller’s role may not do this.',
    500: 'Unexpected error; the request id identifies it in the logs.',
    503: 'A service behind the gateway is unavailable.',
    504: 'A service behind the gateway did not answer in time.',
  };
  if (route.path.includes(':')) out[404] = 'No such resource in the caller’s organization.';
  if (route.body && (route.kind ?? 'json') === 'json') {
    out[413] = 'The body is too large.';
    out[415] = 'The body is not application/json.';
  }
  if ((route.auth ?? 'bearer') === 'none') delete out[401];
  if (route.auth === 'ticket') {
    out[401] = 'No valid bearer token, and no valid, unexpired stream ticket.';
    out[403] = 'The caller’s role may not do this, or the ticket was issued for another resource.';
  }
  if (route.kind === 'events') {
    for (const s of [400, 401, 403, 404]) out[s] = `${out[s] ?? ''} Answered before the stream starts.`.trim();
  }
  if (route.idempotent) {
    out[409] = 'A request with this Idempotency-Key is still in progress (retry after Retry-After seconds).';
    out[422] = 'The Idempotency-Key was used with a different request.';
  }
  for (const [status, text] of Object.entries(route.errors ?? {})) {
    const s = Number(status);
    out[s] = out[s] ? `${text} Also: ${out[s]}` : text;
  }
  return out;
}

/** OpenAPI 3.1 for the routes, generated from the same zod schemas that validate requests. */
export function buildOpenApiDocument(routes: readonly RouteDefinition[], info: { version: string }): JsonSchema {
  // Make sure the problem schemas are registered even if no route names them.
  void Problem;
  void FieldError;
  const { schemas, inputName } = components();
  const names: ComponentNames = { inputName, ids: new Set(Object.keys(schemas)) };
  const paths: Record<string, Record<string, JsonSchema>> = {};
  for (const route of routes) {
    const path = `${API_BASE}${route.path}`.replace(/\/:([A-Za-z_]+)/g, '/{$1}');
    const responses: Record<string, JsonSchema> = {};
    for (const [status, r] of Object.entries(route.responses)) {
      responses[status] = {
        description: r.description,
        ...(r.schema
          ? { content: { [r.contentType ?? 'application/json']: { schema: schemaFor(r.schema, 'output', names) } } }
          : r.contentType
            ? { content: { [r.contentType]: { schema: { type: 'string' } } } }
            : {}),
        headers: { 'X-Request-Id': { $ref: '#/components/headers/RequestId' } },
      };
    }
    for (const [status, description] of Object.entries(errorStatuses(route))) {
      responses[status] = {
        description,
        content: { 'application/problem+json': { schema: { $ref: `${REF}Problem` } } },
      };
    }
    const params = parameters(route);
    if (route.idempotent) params.push({ $ref: '#/components/parameters/IdempotencyKey' });
    if (route.auth === 'ticket') params.push({ $ref: '#/components/parameters/StreamTicket' });
    if (route.kind === 'events') {
      params.push({ $ref: '#/components/parameters/LastEventId' });
      const ok = responses['200'] as { content?: Record<string, JsonSchema> } | undefined;
      if (ok) {
        ok.content = {
          'text/event-stream': {
            schema: {
              type: 'string',
              description: 'Server-sent events (WHATWG HTML §9.2): `event`, `id`, `data` lines.',
            },
            // One entry per event name the stream sends, with the schema of its JSON `data`.
            'x-events': (route.events ?? []).map((e) => ({
              event: e.name,
              description: e.description,
              ...(e.schema ? { data: schemaFor(e.schema, 'output', names) } : {}),
            })),
          },
        };
      }
    }
    paths[path] ??= {};
    paths[path]![route.method.toLowerCase()] = {
      operationId: route.operationId,
      summary: route.summary,
      ...(route.description ? { description: route.description } : {}),
      tags: [...route.tags],
      'x-roles': [...route.roles],
      'x-actors': [...(route.actors ?? ['user'])],
      'x-kind': route.kind ?? 'json',
      // `none`: no token at all; `optional`: the request authorizes itself (a signed URL), a token may be added.
      ...((route.auth ?? 'bearer') === 'none' ? { security: [] } : {}),
      ...((route.auth ?? 'bearer') === 'optional' ? { security: [{}, { bearer: [] }] } : {}),
      ...(route.auth === 'ticket' ? { security: [{ bearer: [] }, { ticket: [] }] } : {}),
      ...(params.length > 0 ? { parameters: params } : {}),
      ...(route.body
        ? {
            requestBody: {
              required: true,
              content: { 'application/json': { schema: schemaFor(route.body, 'input', names) } },
            },
          }
        : route.streamBody
          ? {
              requestBody: {
                required: true,
                description: route.streamBody.description,
                content: {
                  [route.streamBody.contentType]: {
                    schema: { type: 'string', contentMediaType: route.streamBody.contentType },
                  },
                },
              },
            }
          : {}),
      responses,
    };
  }
  const problemTypes = Object.fromEntries(
    ERROR_CODE_LIST.map((c) => [c, { status: STATUS_OF[c], type: problemType(c) }]),
  );
  return {
    openapi: '3.1.0',
    info: {
      title: 'Ferry API',
      version: info.version,
      description:
        'Orders → batches → tasks → verified uploads → episodes → QA. Every route except health and these docs needs ' +
        '`Authorization: Bearer <token>`; data is scoped to the token’s organization. Errors are RFC 9457 problem+json ' +
        'with a stable `code`. Command routes accept `Idempotency-Key` (kept 24 h).',
    },
    servers: [{ url: '/' }],
    security: [{ bearer: [] }],
    tags: [...new Set(routes.flatMap((r) => r.tags))].map((name) => ({ name })),
    paths,
    components: {
      schemas,
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
        ticket: {
          type: 'apiKey',
          in: 'query',
          name: 'ticket',
          description: 'A short-lived stream ticket (`fet_…`) for one resource, from its `…/events-ticket` route.',
        },
      },
      parameters: {
        IdempotencyKey: {
          name: 'Idempotency-Key',
          in: 'header',
          required: false,
          description:
            'Makes a retry safe: the first response is stored for 24 h and replayed (with `Idempotency-Replayed: true`) ' +
            'for the same key and request; the same key with another request → 422; while the first is running → 409.',
          schema: { type: 'string', minLength: 1, maxLength: 257 },
        },
        StreamTicket: {
          name: 'ticket',
          in: 'query',
          required: false,
          description:
            'Instead of an Authorization header (a browser’s EventSource cannot send one): a stream ticket from ' +
            '`POST …/events-ticket`, valid a few minutes for this resource only. Never put a bearer token here.',
          schema: { type: 'string', pattern: '^fet_[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]{43}$', maxLength: 1552 },
        },
        LastEventId: {
          name: 'Last-Event-ID',
          in: 'header',
          required: false,
          description:
            'Resume after this event id (browsers send it on reconnect): every later frame exactly once, or a fresh ' +
            'snapshot when the id is too old. `?last_event_id=` does the same for clients that cannot set the header.',
          schema: { type: 'string', pattern: '^[0-9]{1,15}$' },
        },
      },
      headers: {
        RequestId: {
          description: 'The request id (yours from X-Request-Id, or generated).',
          schema: { type: 'string' },
        },
      },
    },
    'x-problem-types': problemTypes,
  };
}
