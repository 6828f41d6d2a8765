import net from 'node:net';
import { ERROR_CODE_LIST } from '@ferry/contracts';
import { mintAccessToken } from '@ferry/platform';
import { sql } from 'kysely';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { globalCases, type HostileCase, hostileCases, type Operation, operationsOf } from '../support/hostile-cases.js';
import { System } from '../support/system.js';

/** Anything that would mean a database, driver or runtime detail reached the client. */
const LEAK =
  /postgres|sqlstate|pg_|syntax error|relation "|violates|duplicate key|kysely|node_modules|\bat \S+\.js|ECONN|stack|TypeError|RangeError|undefined is not|JetStream|nats/i;

interface Outcome {
  status: number;
  contentType: string;
  text: string;
  /** By lower-case name (requests sent with fetch). */
  headers?: Record<string, string>;
}

async function send(base: string, c: HostileCase): Promise<Outcome> {
  if (c.raw !== undefined) return sendRaw(new URL(base), c.raw);
  const res = await fetch(`${base}${c.url}`, {
    method: c.method,
    headers: c.headers,
    body: c.body,
    redirect: 'manual',
  });
  const headers = Object.fromEntries(res.headers);
  return { status: res.status, contentType: res.headers.get('content-type') ?? '', text: await res.text(), headers };
}

/** Raw bytes on a socket, for framing errors no HTTP client would produce. */
function sendRaw(url: URL, raw: string): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: url.hostname, port: Number(url.port) });
    let data = '';
    socket.setTimeout(5_000, () => socket.destroy(new Error('no answer within 5 s')));
    socket.on('data', (d) => {
      data += d.toString();
    });
    socket.on('error', reject);
    socket.on('close', () => {
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(data)?.[1] ?? 0);
      const [head = '', body = ''] = data.split('\r\n\r\n');
      const contentType = /content-type: *([^\r\n]+)/i.exec(head)?.[1] ?? '';
      resolve({ status, contentType, text: body });
    });
    socket.write(raw);
  });
}

/** Every row of every table of the namespace, hashed per table: any write shows up (but token use stamps). */
async function fingerprint(system: System): Promise<Record<string, string>> {
  const db = system.infra.database('production').db;
  const { rows: tables } = await sql<{ schema: string; table: string }>`
    select table_schema as schema, table_name as table from information_schema.tables
    where table_schema like ${`${system.infra.ns.prefix}\\_%`} and table_type = 'BASE TABLE'
    order by 1, 2`.execute(db);
  const out: Record<string, string> = {};
  for (const { schema, table } of tables) {
    // `last_used_at` is usage bookkeeping a refused request may still stamp (the token was presented).
    const { rows } = await sql<{ h: string | null; n: number }>`
      select md5(coalesce(string_agg((to_jsonb(t) - 'last_used_at')::text, '|' order by (to_jsonb(t) - 'last_used_at')::text), '')) as h,
             count(*)::int as n
      from ${sql.table(`${schema}.${table}`)} as t`.execute(db);
    out[`${schema}.${table}`] = `${rows[0]!.n}:${rows[0]!.h}`;
  }
  return out;
}

describe('generated bad input against every operation of the served OpenAPI document', () => {
  let system: System;
  const org = uuidv7();
  const ids: Record<string, string> = {};
  let deviceToken = '';

  beforeAll(async () => {
    system = await System.create();
    await system.start(['production', 'transfer', 'qa', 'gateway']);
    const api = system.client(await system.token(org, 'operator'));
    // Real resources, so a hostile request that slipped through would change something we can see.
    const scene = await api('POST', '/scenes', { name: 'hostile-scene' });
    const order = await api('POST', '/orders', { scene_id: scene.body.id, name: 'hostile-order', target_count: 50 });
    const ws = await api('POST', '/workstations', { device_id: 'hostile-dev', collector_operator_id: 'hostile-op' });
    const batch = await api('POST', '/batches', {
      order_id: order.body.id,
      workstation_id: ws.body.id,
      task_groups: [{ group: 'g', quantity: 2 }],
    });
    for (const r of [scene, order, ws, batch]) expect(r.status).toBe(201);
    // A paired device, for the routes only devices may call.
    const device = await api('POST', '/devices', { device_id: 'hostile-dev' });
    const admin = system.client(await system.token(org, 'admin'));
    const pairing = await admin('POST', `/devices/${device.body.id}/pairing-tokens`, {});
    const issued = await fetch(`${system.gatewayUrl}/api/v1/device-tokens`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ pairing_token: pairing.body.pairing_token }),
    });
    deviceToken = ((await issued.json()) as { token: string }).token;
    expect(deviceToken).toMatch(/^fdt_/);
    Object.assign(ids, {
      scenes: scene.body.id,
      orders: order.body.id,
      workstations: ws.body.id,
      batches: batch.body.batch.id,
      tasks: batch.body.tasks[0].id,
    });
  }, 120_000);
  afterAll(() => system?.shutdown());

  it('refuses each case with a 4xx problem+json carrying a code, leaks nothing, and changes nothing', async () => {
    const base = system.gatewayUrl;
    const doc = (await (await fetch(`${base}/api/v1/openapi.json`)).json()) as Record<string, any>;
    const operations: Operation[] = operationsOf(doc);
    expect(operations.length).toBeGreaterThan(20);
    const secret = system.jwtSecret;
    const auth = {
      valid: `Bearer ${await system.token(org, 'admin')}`,
      viewer: `Bearer ${await system.token(org, 'viewer')}`,
      expired: `Bearer ${await mintAccessToken({ secret, org, role: 'admin', sub: 'old', ttlSeconds: -60 })}`,
      forged: `Bearer ${await mintAccessToken({ secret: 'x'.repeat(40), org, role: 'admin', sub: 'forger' })}`,
      device: `Bearer ${deviceToken}`,
    };
    const idFor = (op: Operation) => ids[op.path.split('/')[3] ?? ''] ?? uuidv7();
    const cases = [
      ...operations.flatMap((op) => hostileCases(doc, op, { idFor, auth })),
      ...globalCases(operations, auth.valid),
    ];

    const before = await fingerprint(system);
    const failures: string[] = [];
    let next = 0;
    const worker = async () => {
      while (next < cases.length) {
        const c = cases[next++]!;
        const where = `${c.operation} — ${c.name}`;
        let outcome: Outcome;
        try {
          outcome = await send(base, c);
        } catch (err) {
          const cause = (err as { cause?: { code?: string; message?: string } }).cause;
          failures.push(
            `${where}: request failed: ${(err as Error).message} (${cause?.code ?? ''} ${cause?.message ?? ''})`,
          );
          continue;
        }
        const problems: string[] = [];
        if (c.expectStatus !== undefined && outcome.status !== c.expectStatus) {
          problems.push(`status ${outcome.status}, expected ${c.expectStatus}`);
        } else if (outcome.status < 400 || outcome.status > 499) problems.push(`status ${outcome.status}`);
        if (outcome.contentType !== 'application/problem+json') problems.push(`content-type "${outcome.contentType}"`);
        let code: unknown;
        try {
          code = (JSON.parse(outcome.text) as { code?: unknown }).code;
        } catch {
          problems.push('body is not JSON');
        }
        if (!ERROR_CODE_LIST.includes(code as never)) problems.push(`code ${String(code)}`);
        for (const [name, value] of Object.entries(c.expectHeaders ?? {})) {
          const got = outcome.headers?.[name];
          if (got !== value) problems.push(`${name}: ${got ?? '(none)'}, expected ${value}`);
        }
        if (LEAK.test(outcome.text)) problems.push(`leaks: ${outcome.text.slice(0, 200)}`);
        if (problems.length > 0) failures.push(`${where}: ${problems.join('; ')} — ${outcome.text.slice(0, 160)}`);
      }
    };
    await Promise.all(Array.from({ length: 8 }, worker));
    const after = await fingerprint(system);

    console.log(`bad-input suite: ${cases.length} cases over ${operations.length} operations`);
    expect(failures).toEqual([]);
    expect(cases.length).toBeGreaterThanOrEqual(1_000);
    expect(after).toEqual(before);
    // The gateway survived all of it.
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
  });
});
