import { randomUUID } from 'node:crypto';

/**
 * Generates bad requests for every operation of an OpenAPI 3.1 document: each case is a request that
 * must be refused with a 4xx problem+json (never reach a service, never change anything). The
 * document is the only input, so operations added later are covered without editing this file.
 */

type Schema = Record<string, any>;

export interface Operation {
  method: string;
  /** OpenAPI path with `{name}` placeholders, e.g. `/api/v1/orders/{id}`. */
  path: string;
  pathParams: string[];
  /** Each path parameter's schema, by name. */
  pathSchemas: Record<string, Schema>;
  queryParams: { name: string; schema: Schema; required: boolean }[];
  body?: Schema;
  /** The request body is bytes, not JSON (a part PUT). */
  rawBody: boolean;
  idempotent: boolean;
  /** A bearer token is required (not `security: []` nor an optional `{}` alternative). */
  security: boolean;
  /** Who may call it (`x-actors`): users, devices or both. */
  actors: string[];
  /** The user roles that may call it (`x-roles`). */
  roles: string[];
}

export interface HostileCase {
  operation: string;
  name: string;
  method: string;
  /** Path and query, already encoded as they go on the wire. */
  url: string;
  headers: Record<string, string>;
  body?: string | Uint8Array;
  /** A specific status the case must get; otherwise any 4xx. */
  expectStatus?: number;
  /** Response headers the case must carry, by lower-case name (the `Allow` of a 405). */
  expectHeaders?: Record<string, string>;
  /** Sent with a raw socket (framing errors fetch refuses to produce). */
  raw?: string;
}

export function operationsOf(doc: Schema): Operation[] {
  const ops: Operation[] = [];
  for (const [path, item] of Object.entries<Schema>(doc.paths)) {
    for (const [method, op] of Object.entries<Schema>(item)) {
      if (!['get', 'post', 'put', 'patch', 'delete'].includes(method)) continue;
      const params: Schema[] = (op.parameters ?? []).map((p: Schema) => resolve(doc, p));
      const bodyRef = op.requestBody?.content?.['application/json']?.schema;
      const inPath = params.filter((p) => p.in === 'path');
      ops.push({
        method: method.toUpperCase(),
        path,
        pathParams: inPath.map((p) => p.name),
        pathSchemas: Object.fromEntries(inPath.map((p) => [p.name, resolve(doc, p.schema)])),
        queryParams: params
          .filter((p) => p.in === 'query')
          .map((p) => ({ name: p.name, schema: p.schema, required: p.required === true })),
        body: bodyRef ? resolve(doc, bodyRef) : undefined,
        rawBody: op.requestBody !== undefined && bodyRef === undefined,
        idempotent: params.some((p) => p.in === 'header' && /idempotency-key/i.test(p.name)),
        security: (() => {
          const requirements: Schema[] = op.security ?? doc.security ?? [];
          return requirements.length > 0 && !requirements.some((r) => Object.keys(r).length === 0);
        })(),
        actors: op['x-actors'] ?? ['user'],
        roles: op['x-roles'] ?? [],
      });
    }
  }
  return ops;
}

function resolve(doc: Schema, schema: Schema): Schema {
  let s = schema;
  for (let i = 0; i < 10 && s?.$ref; i++) {
    const parts = String(s.$ref).replace(/^#\//, '').split('/');
    s = parts.reduce((node: Schema, key) => node?.[key], doc);
  }
  return s;
}

/**
 * A value the schema accepts, as small as possible (strings, numbers, arrays at their minimum). An
 * object property takes `field(name, schema)` when that gives a value, required or not (a reference
 * to a real resource, so a request that slipped through would not stop at 404 on a made-up id).
 */
export function minimalValue(
  doc: Schema,
  raw: Schema,
  options: { field?: (name: string, schema: Schema) => unknown; depth?: number } = {},
): unknown {
  const schema = resolve(doc, raw);
  const depth = options.depth ?? 0;
  if (!schema || depth > 8) return null;
  const deeper = { ...options, depth: depth + 1 };
  if (schema.default !== undefined) return schema.default;
  if (schema.enum) return schema.enum[0];
  if (schema.const !== undefined) return schema.const;
  for (const key of ['anyOf', 'oneOf', 'allOf'] as const) {
    if (Array.isArray(schema[key])) return minimalValue(doc, schema[key][0], deeper);
  }
  switch (schema.type) {
    case 'string':
      if (schema.format === 'uuid') return randomUUID();
      if (schema.format === 'date-time') return new Date().toISOString();
      if (schema.pattern && /\[0-9a-f\]\{64\}/i.test(schema.pattern)) return 'a'.repeat(64);
      return 'x'.repeat(Math.max(1, schema.minLength ?? 1));
    case 'integer':
    case 'number':
      return schema.minimum ?? (schema.exclusiveMinimum !== undefined ? schema.exclusiveMinimum + 1 : 1);
    case 'boolean':
      return false;
    case 'array':
      return Array.from({ length: schema.minItems ?? 0 }, () => minimalValue(doc, schema.items ?? {}, deeper));
    case 'object': {
      const out: Record<string, unknown> = {};
      const required: string[] = schema.required ?? [];
      for (const [name, property] of Object.entries<Schema>(schema.properties ?? {})) {
        const given = options.field?.(name, property);
        if (given !== undefined) out[name] = given;
        else if (required.includes(name)) out[name] = minimalValue(doc, property, deeper);
      }
      return out;
    }
    default:
      return null;
  }
}

function isUuid(doc: Schema, raw: Schema): boolean {
  const schema = resolve(doc, raw);
  const variants: Schema[] = schema?.anyOf ?? schema?.oneOf ?? [schema];
  return variants.some((v) => resolve(doc, v)?.format === 'uuid');
}

/**
 * The resource a path parameter names: the collection segment it follows (`/devices/{id}` → `devices`,
 * `/devices/{id}/tokens/{token_id}` → `tokens` for `token_id`), or '' when it follows another parameter.
 */
export function resourceOf(path: string, param: string): string {
  const segments = path.split('/');
  const before = segments[segments.indexOf(`{${param}}`) - 1] ?? '';
  return before.startsWith('{') ? '' : before;
}

/** The collection a `<thing>_id` body field refers to (`scene_id` → `scenes`, `batch_id` → `batches`). */
function collectionOf(field: string): string | undefined {
  if (!field.endsWith('_id')) return undefined;
  const thing = field.slice(0, -3).replace(/_/g, '-');
  return /(ch|sh|s|x)$/.test(thing) ? `${thing}es` : `${thing}s`;
}

/** Real resources the generated requests point at, so that only the one bad value in a case can refuse it. */
export interface HostileFixtures {
  /**
   * A real id per resource, keyed by collection (`resourceOf`): path parameters and `<thing>_id` body
   * fields take them. A uuid path parameter with none falls back to a random id, reported by `onRandomId`.
   */
  ids: Record<string, string>;
  /**
   * Per operation (`DELETE /api/v1/scenes/{id}`), ids that replace `ids` for its path parameters: a throwaway
   * resource its valid request can use up (a delete) without taking from the operations that run after it.
   */
  idsByOperation?: Record<string, Record<string, string>>;
  /** Valid values (URL-encoded) for required query parameters no schema can make up (a part URL's signature). */
  query?: Record<string, string>;
  /** Valid values for body fields no schema can make up, by name (an unused pairing token). */
  fields?: Record<string, unknown>;
  /** The body a valid request of an operation with a byte body sends (the exact bytes of that part). */
  rawBody?: Uint8Array;
}

/** True when `pattern` (a JSON-schema pattern) is given and refuses `value`. */
function rejects(pattern: string | undefined, value: string): boolean {
  if (!pattern) return false;
  try {
    return !new RegExp(pattern, 'u').test(value);
  } catch {
    return false;
  }
}

const HOSTILE_PATH_VALUES: Record<string, string> = {
  traversal: '..%2F..%2Fetc%2Fpasswd',
  'encoded traversal': '%2e%2e%2f%2e%2e%2fetc',
  'sql metacharacters': "1'%20OR%20'1'%3D'1",
  'sql comment': '1%3B%20DROP%20TABLE%20orders%3B--',
  nul: 'abc%00def',
  'malformed percent-encoding': '%E0%A4%A',
  'lone surrogate (CESU-8)': '%ED%A0%80',
  'invalid UTF-8': '%FF%FE',
  huge: 'a'.repeat(4000),
  emoji: '%F0%9F%98%80',
  'negative number': '-1',
  'almost a uuid': '01900000-0000-7000-8000-00000000000g',
  'uuid with braces': '%7B01900000-0000-7000-8000-000000000000%7D',
  'null literal': 'null',
};

/** Values that are wrong for a query parameter of this schema (each must be refused). */
function badQueryValues(schema: Schema): Record<string, string> {
  const out: Record<string, string> = {
    'NUL character': 'a%00b',
    'lone surrogate': '%ED%A0%80',
    'invalid UTF-8': '%C3%28',
    huge: 'z'.repeat(5000),
  };
  if (schema.type === 'integer' || schema.type === 'number') {
    Object.assign(out, {
      'not a number': 'abc',
      negative: '-1',
      'below minimum': String((schema.minimum ?? 1) - 1),
      'above maximum': String((schema.maximum ?? 1e9) + 1),
      fraction: '1.5',
      overflow: '1e400',
      NaN: 'NaN',
      empty: '',
    });
  } else {
    for (const [name, value] of Object.entries({
      'sql metacharacters': "'%20OR%201%3D1--",
      traversal: '..%2F..%2Fetc%2Fpasswd',
      'wrong shape': 'not%20valid%3F',
    })) {
      if (schema.format === 'uuid' || rejects(schema.pattern, decodeURIComponent(value))) out[name] = value;
    }
  }
  if (schema.format === 'date-time') {
    Object.assign(out, {
      'year zero': '0000-01-01T00:00:00Z',
      'past 9999 after rounding': '9999-12-31T23:59:59.9999999Z',
      'five-digit year': '%2B010000-01-01T00:00:00Z',
      'no offset': '2024-01-01T00:00:00',
      'impossible date': '2024-13-45T00:00:00Z',
    });
  }
  return out;
}

/** Forged or tampered cursors. */
const FORGED_CURSORS: Record<string, string> = {
  'not base64': '!!!!',
  'base64 of garbage': 'AAAAAAAA',
  'base64 json with a bad id': Buffer.from('{"id":"1\' OR 1=1"}').toString('base64url'),
  'base64 json array': Buffer.from('[1,2,3]').toString('base64url'),
  'base64 deep json': Buffer.from('['.repeat(300) + ']'.repeat(300)).toString('base64url'),
  'over the length limit': 'A'.repeat(600),
};

function nest(levels: number): unknown {
  let v: unknown = 1;
  for (let i = 0; i < levels; i++) v = { a: v };
  return v;
}

/** Values that make a field of this schema invalid, as JSON values (never one it accepts). */
function badFieldValues(raw: Schema): Record<string, unknown> {
  const variants: Schema[] = raw.anyOf ?? raw.oneOf ?? [raw];
  const nullable = variants.some((v) => v.type === 'null');
  const schema = variants.find((v) => v.type !== 'null') ?? raw;
  const out: Record<string, unknown> = nullable ? {} : { null: null };
  const type = schema.type;
  if (type === 'string') {
    Object.assign(out, {
      'a number': 12345,
      'a boolean': true,
      'an object': { nested: true },
      'an array': ['a'],
      'a huge string': 'x'.repeat(100_000),
      'a NUL character': 'ab\u0000cd',
      'a lone surrogate': 'ab\ud800cd',
      'a lone low surrogate': '\udc00',
    });
    const sqlish = "'; DROP TABLE orders; --";
    if (schema.format === 'uuid' || rejects(schema.pattern, sqlish)) out['sql metacharacters'] = sqlish;
    if (schema.pattern?.includes('Cc')) out['a control character'] = 'bell\u0007';
    if (schema.format === 'date-time') {
      Object.assign(out, {
        'year zero': '0000-01-01T00:00:00Z',
        'sub-microsecond year 9999': '9999-12-31T23:59:59.9999999Z',
        'five-digit year': '+010000-01-01T00:00:00Z',
        'not a date': 'yesterday',
      });
    }
    if (schema.enum) out['not in the enum'] = 'definitely-not-a-member';
  } else if (type === 'integer' || type === 'number') {
    Object.assign(out, {
      'a string': '12',
      'an object': { n: 1 },
      'a huge number': 1e308,
      'a huge negative number': -1e308,
    });
    if (type === 'integer') out['a fraction'] = 1.5;
    if (schema.minimum !== undefined) out['below minimum'] = schema.minimum - 1;
    if (schema.maximum !== undefined) out['above maximum'] = schema.maximum + 1;
  } else if (type === 'boolean') {
    Object.assign(out, { 'a string': 'true', 'a number': 1 });
  } else if (type === 'array') {
    Object.assign(out, { 'a string': 'a,b', 'an object': { a: 1 }, 'an array of nulls': [null, null] });
    if (schema.maxItems !== undefined) out['too many items'] = Array.from({ length: schema.maxItems + 1 }, () => ({}));
  } else if (type === 'object') {
    Object.assign(out, {
      'a string': 'x',
      'an array': [1],
      'nested 20 levels (over the JSON depth limit)': nest(20),
      'nested 100 levels': nest(100),
      'over 16 KiB': { blob: 'x'.repeat(20_000) },
      'a key with NUL': { 'k\u0000': 1 },
      'a value with a lone surrogate': { k: '\ud83d' },
    });
  }
  return out;
}

/**
 * The URL of `op` with `pathValues` and `query` (name → URL-encoded value; pairs in `extra` replace a
 * name's value or repeat it).
 */
function urlFor(
  op: Operation,
  pathValues: Record<string, string>,
  query: Record<string, string>,
  extra: [string, string][] = [],
): string {
  let path = op.path;
  for (const name of op.pathParams) path = path.replace(`{${name}}`, pathValues[name]!);
  const replaced = new Set(extra.map(([name]) => name));
  const pairs = [...Object.entries(query).filter(([name]) => !replaced.has(name)), ...extra];
  return pairs.length === 0 ? path : `${path}?${pairs.map(([name, value]) => `${name}=${value}`).join('&')}`;
}

/** What the hostile cases of an operation are built from: real resources, the caller it accepts. */
export interface HostileOptions {
  fixtures: HostileFixtures;
  auth: { valid: string; expired: string; forged: string; viewer: string; device: string };
  /** Told of each uuid path parameter no fixture covers (its cases run against a random id). */
  onRandomId?: (operation: string, param: string) => void;
}

/** The valid request of `op` every hostile case alters in one place, and the parts the cases reuse. */
function baseOf(doc: Schema, op: Operation, options: HostileOptions) {
  const label = `${op.method} ${op.path}`;
  const { fixtures } = options;
  const ids = Object.fromEntries(
    op.pathParams.map((param) => {
      const schema = op.pathSchemas[param] ?? {};
      if (!isUuid(doc, schema)) return [param, encodeURIComponent(String(minimalValue(doc, schema)))];
      const resource = resourceOf(op.path, param);
      const real = fixtures.idsByOperation?.[label]?.[resource] ?? fixtures.ids[resource];
      if (real === undefined) options.onRandomId?.(label, param);
      return [param, real ?? randomUUID()];
    }),
  );
  const query = Object.fromEntries(
    op.queryParams
      .filter((q) => q.required)
      .map((q) => [q.name, fixtures.query?.[q.name] ?? encodeURIComponent(String(minimalValue(doc, q.schema)))]),
  );
  const url = (path: Record<string, string> = ids, extra: [string, string][] = []) => urlFor(op, path, query, extra);
  const field = (name: string, schema: Schema) => {
    if (fixtures.fields?.[name] !== undefined) return fixtures.fields[name];
    const collection = collectionOf(name);
    return collection !== undefined && isUuid(doc, schema) ? fixtures.ids[collection] : undefined;
  };
  const baseBody = op.body ? (minimalValue(doc, op.body, { field }) as Record<string, unknown>) : undefined;
  // An update needs at least one field: the first, at its smallest.
  const [firstField] = Object.entries<Schema>(op.body?.properties ?? {});
  if (op.method === 'PATCH' && baseBody && Object.keys(baseBody).length === 0 && firstField) {
    baseBody[firstField[0]] = minimalValue(doc, firstField[1], { field });
  }
  const json: Record<string, string> = { 'content-type': 'application/json' };
  const bytes: Record<string, string> =
    op.rawBody && fixtures.rawBody ? { 'content-type': 'application/octet-stream' } : {};
  // A caller the operation accepts as it is: a device where devices may call (a user acting on a
  // device's behalf must name it, which no schema says), an admin elsewhere.
  const auth = { authorization: op.actors.includes('device') ? options.auth.device : options.auth.valid };
  const withBody = (body: unknown) =>
    op.body ? JSON.stringify(body) : op.rawBody && fixtures.rawBody ? fixtures.rawBody : undefined;
  const bodyHeaders = op.body ? json : bytes;
  return { label, ids, query, url, baseUrl: url(), field, baseBody, json, auth, withBody, bodyHeaders };
}

/**
 * The request of `op` that every hostile case alters in one place, unaltered: it must succeed, or each case
 * of `op` could pass on the refusal of something the case did not change.
 */
export function baseRequest(doc: Schema, op: Operation, options: HostileOptions): HostileCase {
  const { label, baseUrl, auth, bodyHeaders, withBody, baseBody } = baseOf(doc, op, options);
  return {
    operation: label,
    name: 'the base request',
    method: op.method,
    url: baseUrl,
    headers: { ...auth, ...bodyHeaders },
    body: withBody(baseBody),
  };
}

/**
 * Every hostile case for `op`. Each is a request that would be valid but for one thing: path
 * parameters, required query parameters, `<thing>_id` body fields and byte bodies come from `fixtures`
 * (real resources, so a request that slipped through would change something the suite reads back) or
 * from their own schema (see `baseRequest`); `auth` are the Authorization headers to use.
 */
export function hostileCases(doc: Schema, op: Operation, options: HostileOptions): HostileCase[] {
  const cases: HostileCase[] = [];
  const { label, ids, query, url, baseUrl, field, baseBody, json, auth, withBody, bodyHeaders } = baseOf(
    doc,
    op,
    options,
  );
  const add = (c: Omit<HostileCase, 'operation' | 'method'> & { method?: string }) =>
    cases.push({ operation: label, method: op.method, ...c });

  // Authentication: every case here must be 401 (or 403), whatever else the request says.
  if (op.security) {
    for (const [name, value] of Object.entries({
      'no Authorization header': undefined,
      'Basic credentials': 'Basic dXNlcjpwYXNz',
      'an empty bearer': 'Bearer ',
      'a malformed bearer': 'Bearer not.a.jwt',
      'an expired token': options.auth.expired,
      'a token signed with another secret': options.auth.forged,
      'alg none': `Bearer ${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${Buffer.from(
        JSON.stringify({ sub: 'x', org: randomUUID(), role: 'admin', exp: 4e9, iss: 'ferry', aud: 'ferry-api' }),
      ).toString('base64url')}.`,
      'a bearer with control characters': 'Bearer abc\tdef',
      'an unknown token type': 'Bearer fxx_0123456789abcdef',
    })) {
      add({
        name: `auth: ${name}`,
        url: baseUrl,
        headers: { ...(value ? { authorization: value } : {}), ...bodyHeaders },
        body: withBody(baseBody),
        expectStatus: 401,
      });
    }
    // A write a viewer may not make (a POST that viewers may call, such as asking for a stream ticket, is not one).
    if (op.method !== 'GET' && op.actors.includes('user') && !op.roles.includes('viewer')) {
      add({
        name: 'auth: a viewer writing',
        url: baseUrl,
        headers: { authorization: options.auth.viewer, ...bodyHeaders },
        body: withBody(baseBody),
        expectStatus: 403,
      });
    }
  }

  // Path parameters.
  for (const param of op.pathParams) {
    for (const [name, value] of Object.entries(HOSTILE_PATH_VALUES)) {
      add({
        name: `path ${param}: ${name}`,
        url: url({ ...ids, [param]: value }),
        headers: { ...auth, ...bodyHeaders },
        body: withBody(baseBody),
      });
    }
  }

  // Query parameters: one bad value, every other parameter (and the body) valid.
  for (const { name, schema } of op.queryParams) {
    const values = name === 'cursor' ? { ...badQueryValues(schema), ...FORGED_CURSORS } : badQueryValues(schema);
    for (const [what, value] of Object.entries(values)) {
      add({
        name: `query ${name}: ${what}`,
        url: url(ids, [[name, value]]),
        headers: { ...auth, ...bodyHeaders },
        body: withBody(baseBody),
      });
    }
    const good =
      query[name] ?? (name === 'limit' ? '10' : encodeURIComponent(String(minimalValue(doc, schema, { field }))));
    add({
      name: `query ${name}: repeated`,
      url: url(ids, [
        [name, good],
        [name, good],
      ]),
      headers: { ...auth, ...bodyHeaders },
      body: withBody(baseBody),
    });
  }
  add({
    name: 'query: unknown parameter',
    url: url(ids, [['no_such_parameter', '1']]),
    headers: { ...auth, ...bodyHeaders },
    body: withBody(baseBody),
  });

  // Bodies.
  if (op.body && baseBody && typeof baseBody === 'object') {
    const send = (name: string, body: string | Uint8Array, headers: Record<string, string> = json, status?: number) =>
      add({ name: `body: ${name}`, url: baseUrl, headers: { ...auth, ...headers }, body, expectStatus: status });
    send('text/plain content type', JSON.stringify(baseBody), { 'content-type': 'text/plain' }, 415);
    send('form content type', 'a=1&b=2', { 'content-type': 'application/x-www-form-urlencoded' }, 415);
    send('no content type', JSON.stringify(baseBody), {}, 415);
    send('malformed JSON', '{"a": ');
    send('trailing garbage', `${JSON.stringify(baseBody)} xyz`);
    send('a JSON array', '[]');
    send('a JSON string', '"x"');
    send('JSON null', 'null');
    send('a JSON number', '12');
    if ((op.body.required ?? []).length > 0) send('an empty object', '{}');
    send('nested 10,000 levels', `${'['.repeat(10_000)}${']'.repeat(10_000)}`);
    send('an object nested 10,000 levels', `${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}`);
    send('over 1 MiB', JSON.stringify({ ...baseBody, padding: 'x'.repeat(1_200_000) }));
    send(
      'invalid UTF-8 in a string',
      Buffer.concat([Buffer.from('{"name":"'), Buffer.from([0xff, 0xfe, 0xc3, 0x28]), Buffer.from('"}')]),
    );
    send('a UTF-16 body', Buffer.from(JSON.stringify(baseBody), 'utf16le'));
    send('an unknown field', JSON.stringify({ ...baseBody, no_such_field: 1 }));
    send('a prototype-pollution key', '{"__proto__":{"admin":true},"constructor":{"prototype":{"x":1}}}');
    const properties: Record<string, Schema> = op.body.properties ?? {};
    for (const name of op.body.required ?? []) {
      const { [name]: _gone, ...rest } = baseBody;
      send(`missing required ${name}`, JSON.stringify(rest));
    }
    for (const [name, raw] of Object.entries(properties)) {
      const schema = resolve(doc, raw);
      for (const [what, value] of Object.entries(badFieldValues(schema))) {
        send(`${name}: ${what}`, JSON.stringify({ ...baseBody, [name]: value }));
      }
      // One level down into arrays of objects (bulk items, task groups).
      const item = schema.type === 'array' ? resolve(doc, schema.items ?? {}) : undefined;
      if (item?.type === 'object' && Array.isArray(baseBody[name])) {
        const good = minimalValue(doc, item, { field }) as Record<string, unknown>;
        for (const [field, fieldRaw] of Object.entries<Schema>(item.properties ?? {})) {
          for (const [what, value] of Object.entries(badFieldValues(resolve(doc, fieldRaw)))) {
            send(
              `${name}[0].${field}: ${what}`,
              JSON.stringify({ ...baseBody, [name]: [{ ...good, [field]: value }] }),
            );
          }
        }
      }
    }
  }

  // Headers.
  add({
    name: 'headers: over 16 KiB',
    url: baseUrl,
    headers: { ...auth, 'x-padding': 'p'.repeat(20_000) },
    expectStatus: 431,
  });
  if (op.idempotent) {
    for (const [name, key] of Object.entries({
      'over 255 characters': 'k'.repeat(300),
      'with a non-ASCII character': 'cl\u00e9',
      'empty quotes': '""',
    })) {
      add({
        name: `Idempotency-Key ${name}`,
        url: baseUrl,
        headers: { ...auth, ...bodyHeaders, 'idempotency-key': key },
        body: withBody(baseBody),
        expectStatus: 400,
      });
    }
  }
  return cases;
}

/** Matches the concrete paths of an OpenAPI path template (`/orders/{id}` ← `/orders/0190…`). */
function templatePattern(path: string): RegExp {
  const segments = path
    .split('/')
    .map((s) => (/^\{[^}]+\}$/.test(s) ? '[^/]+' : s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  return new RegExp(`^${segments.join('/')}$`);
}

/**
 * Cases that do not belong to one operation: wrong methods (405 with an `Allow` naming what the document
 * declares for the path, plus HEAD wherever GET is), unknown routes, broken HTTP framing, request
 * targets and headers the server cannot use.
 */
export function globalCases(ops: Operation[], auth: string): HostileCase[] {
  const cases: HostileCase[] = [];
  const byPath = new Map<string, Set<string>>();
  for (const op of ops) byPath.set(op.path, (byPath.get(op.path) ?? new Set()).add(op.method));
  const templates = [...byPath].map(([path, methods]) => ({ pattern: templatePattern(path), methods }));
  const allowedAt = (url: string) => {
    const allowed = new Set(templates.filter((t) => t.pattern.test(url)).flatMap((t) => [...t.methods]));
    if (allowed.has('GET')) allowed.add('HEAD');
    return [...allowed].sort();
  };
  for (const path of byPath.keys()) {
    const url = path.replace(/\{[^}]+\}/g, randomUUID());
    const allowed = allowedAt(url);
    for (const method of ['GET', 'POST', 'PUT', 'PATCH', 'DELETE']) {
      if (allowed.includes(method)) continue;
      cases.push({
        operation: `${method} ${path}`,
        name: 'method not allowed',
        method,
        url,
        headers: { authorization: auth },
        expectStatus: 405,
        expectHeaders: { allow: allowed.join(', ') },
      });
    }
  }
  for (const url of ['/api/v1/no-such-thing', '/api/v1/orders/x/y/z', '/api/v2/orders', '/nothing-here']) {
    cases.push({
      operation: 'unknown route',
      name: url,
      method: 'GET',
      url,
      headers: { authorization: auth },
      expectStatus: 404,
    });
  }
  const framing: Record<string, string> = {
    'a garbage request line': 'GARBAGE\r\n\r\n',
    'an invalid header line': 'GET /api/v1/orders HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n',
    'conflicting lengths':
      'POST /api/v1/orders HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
  };
  for (const [name, raw] of Object.entries(framing)) {
    cases.push({ operation: 'HTTP framing', name, method: 'RAW', url: '', headers: {}, raw, expectStatus: 400 });
  }
  // Well-framed requests the HTTP server itself cannot serve: refused before any route, as problem+json.
  const unusable: Record<string, { raw: string; status: number }> = {
    'a backslash in the path': { raw: 'GET /api\\v1/orders HTTP/1.1\r\nHost: x\r\n\r\n', status: 400 },
    'an invalid Host header': { raw: 'GET /api/v1/orders HTTP/1.1\r\nHost: a@b\r\n\r\n', status: 400 },
    'a bad absolute-form target': { raw: 'GET http://[bad/api/v1/orders HTTP/1.1\r\nHost: x\r\n\r\n', status: 400 },
    'an HTTP/1.1 request without Host': { raw: 'GET /api/v1/orders HTTP/1.1\r\n\r\n', status: 400 },
    'an Expect other than 100-continue': {
      raw: 'GET /api/v1/orders HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\n\r\n',
      status: 417,
    },
  };
  for (const [name, { raw, status }] of Object.entries(unusable)) {
    cases.push({
      operation: 'HTTP target and headers',
      name,
      method: 'RAW',
      url: '',
      headers: {},
      raw,
      expectStatus: status,
    });
  }
  return cases;
}
