import { createHash } from 'node:crypto';
import { readdir, stat } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { ERROR_CODE_LIST } from '@ferry/contracts';
import { mintAccessToken } from '@ferry/platform';
import { waitFor, waitForConsumerDrained, waitForEventsSettled } from '@ferry/platform/testing';
import { sql } from 'kysely';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GOOD_PROFILE, goodSidecar, writeRecording } from '../../services/qa/src/checks/testing/mcap-corpus.js';
import { type DeviceWorld, deviceWorld } from '../support/device-world.js';
import {
  baseRequest,
  globalCases,
  type HostileCase,
  type HostileFixtures,
  hostileCases,
  type Operation,
  operationsOf,
} from '../support/hostile-cases.js';
import { sidecarOf, uploadRecording } from '../support/recordings.js';
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

/**
 * Every row of every table of the namespace (all four service schemas), hashed per table, and every
 * object in the blob store: any write shows up (but token use stamps).
 */
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
  const blobs = (await readdir(system.blobDir, { recursive: true, withFileTypes: true }))
    .filter((e) => e.isFile())
    .map((e) => path.join(e.parentPath, e.name));
  const sized = await Promise.all(
    blobs.map(async (f) => `${path.relative(system.blobDir, f)}:${(await stat(f)).size}`),
  );
  out.blobs = sized.sort().join('|');
  return out;
}

/** Nothing left in flight: every outbox published, every stream still, every durable consumer drained. */
async function settled(system: System): Promise<void> {
  const { infra } = system;
  for (const service of ['production', 'transfer', 'qa'] as const) {
    await waitForEventsSettled({
      jsm: infra.jsm,
      stream: infra.ns.stream(service.toUpperCase()),
      outboxes: [infra.database(service).db],
      timeoutMs: 30_000,
    });
  }
  for await (const stream of infra.jsm.streams.names()) {
    if (!stream.startsWith(`${infra.ns.prefix}_`)) continue;
    for (const consumer of await infra.jsm.consumers.list(stream).next()) {
      if (consumer.config.durable_name) {
        await waitForConsumerDrained({
          jsm: infra.jsm,
          stream,
          durable: consumer.config.durable_name,
          timeoutMs: 30_000,
        });
      }
    }
  }
}

/**
 * The order the base requests of the operations that change something are replayed in, after every GET: each
 * leaves what the next needs (a task readied before it is started, a part PUT before its receipt) and nothing
 * that refuses a later one (the batch recall, which cancels the pending task, after that task's transitions;
 * the device's token and the device, which every device request needs, last).
 */
const REPLAY_ORDER = [
  'POST /api/v1/data-ops/bulk-qa', // a preview: changes nothing
  'POST /api/v1/data-ops/bulk-runs/{id}/events-ticket',
  'POST /api/v1/scenes',
  'PATCH /api/v1/scenes/{id}',
  'POST /api/v1/orders',
  'PATCH /api/v1/orders/{id}',
  'POST /api/v1/workstations',
  'PATCH /api/v1/workstations/{id}',
  'POST /api/v1/devices',
  'PATCH /api/v1/devices/{id}',
  'POST /api/v1/devices/{id}/pairing-tokens',
  'POST /api/v1/device-tokens',
  // The batch takes adjustments only until its tasks are all done, which the task failures below make it.
  'PATCH /api/v1/batches/{id}',
  'PUT /api/v1/batches/{id}/task-groups',
  'POST /api/v1/tasks/{id}/ready',
  'POST /api/v1/tasks/{id}/start',
  'POST /api/v1/tasks/{id}/finish',
  'POST /api/v1/uploads',
  'POST /api/v1/tasks/{id}/fail',
  'PUT /api/v1/uploads/{id}/parts/{file}/{n}',
  'POST /api/v1/uploads/{id}/parts',
  'POST /api/v1/uploads/{id}/complete',
  'POST /api/v1/uploads/{id}/fail',
  'POST /api/v1/batches',
  'POST /api/v1/orders/{id}/tasks',
  'POST /api/v1/orders/{id}/tasks:bulk',
  'POST /api/v1/tasks',
  'POST /api/v1/batches/{id}/recall',
  'POST /api/v1/episodes/{id}/qa/runs',
  'POST /api/v1/episodes/{id}/qa/review',
  'POST /api/v1/qa/profiles',
  'PATCH /api/v1/qa/profiles/{id}',
  'POST /api/v1/data-ops/bulk-runs/{id}/cancel',
  'DELETE /api/v1/qa/profiles/{id}',
  'DELETE /api/v1/batches/{id}',
  'DELETE /api/v1/tasks/{id}',
  'DELETE /api/v1/workstations/{id}',
  'DELETE /api/v1/orders/{id}',
  'DELETE /api/v1/scenes/{id}',
  'DELETE /api/v1/devices/{id}/tokens/{token_id}',
  'DELETE /api/v1/devices/{id}',
];

/**
 * Undone right after its replay: a create whose base request names what the next request renames the
 * fixture to (`x`), which would otherwise refuse that rename as a taken name.
 */
const AFTER_REPLAY: Record<string, (created: { id: string }, world: DeviceWorld) => Promise<unknown>> = {
  'POST /api/v1/scenes': async (created, { operator }) =>
    expect((await operator('DELETE', `/scenes/${created.id}`)).status).toBe(204),
  'POST /api/v1/orders': async (created, { operator }) =>
    expect((await operator('DELETE', `/orders/${created.id}`)).status).toBe(204),
};

describe('generated bad input against every operation of the served OpenAPI document', () => {
  let system: System;
  const org = uuidv7();
  let world: DeviceWorld;
  let fixtures: HostileFixtures;

  beforeAll(async () => {
    system = await System.create();
    await system.start(['production', 'transfer', 'qa', 'gateway']);
    // A real resource of every kind the document names, so that a hostile request that slipped past
    // validation would reach something real and change it (read back below), instead of stopping at
    // 404 on a made-up id and passing as "a 4xx". One scene, order and workstation; a batch of three
    // tasks: one recorded into an episode, two with an open upload each, one pending.
    world = await deviceWorld(system, { org, tasks: 4, deviceId: 'hostile-dev' });
    const { operator, admin, device } = world;
    const must = <T extends { status: number; body: any }>(what: string, r: T, status: number): T => {
      if (r.status !== status)
        throw new Error(`${what}: expected ${status}, got ${r.status}: ${JSON.stringify(r.body)}`);
      return r;
    };
    const mcap = await writeRecording();
    const recorded = await uploadRecording(world, mcap, { sidecar: sidecarOf(goodSidecar(mcap)), index: 0 });
    expect(recorded.status).toBe('acknowledged');
    const episodeId = recorded.episode_id!;
    await waitFor(async () => (await operator('GET', `/episodes/${episodeId}`)).body.qa_status === 'approved', {
      timeoutMs: 30_000,
      what: 'the episode to be approved by QA, in production’s copy too',
    });
    // An open upload of one 16-byte part: its part URL's signed query and bytes make a valid part PUT.
    const part = Buffer.from('hostile-part-016');
    const openUpload = async (taskId: string) => {
      must('finish', await device.api('POST', `/tasks/${taskId}/finish`, {}), 200);
      return must(
        'open upload',
        await device.api('POST', '/uploads', {
          task_id: taskId,
          files: [{ role: 'mcap', size_bytes: part.length, sha256: createHash('sha256').update(part).digest('hex') }],
        }),
        201,
      );
    };
    const open = await openUpload(world.taskIds[1]!);
    const partUrl = new URL(open.body.parts[0].url);
    // A second open upload, for the one operation that ends an upload the first is still needed for (fail).
    const openToFail = await openUpload(world.taskIds[3]!);
    // Throwaways for the deletes: what the fixtures above are cannot be deleted (an order with an episode,
    // the scene it uses, a workstation with a batch), and the replay at the end deletes these for real.
    const sceneId = (await operator('GET', `/orders/${world.orderId}`)).body.scene_id;
    const spareScene = must('scene', await operator('POST', '/scenes', { name: `spare-${uuidv7()}` }), 201);
    const spareOrder = must(
      'order',
      await operator('POST', '/orders', { scene_id: sceneId, name: `spare-${uuidv7()}`, target_count: 1 }),
      201,
    );
    const spareWorkstation = must(
      'workstation',
      await operator('POST', '/workstations', { device_id: 'spare-dev', collector_operator_id: 'spare-op' }),
      201,
    );
    const spareBatch = must(
      'batch',
      await operator('POST', '/batches', {
        order_id: world.orderId,
        workstation_id: world.workstationId,
        task_groups: [{ group: 'spare', quantity: 1 }],
      }),
      201,
    );
    const tokens = must('tokens', await admin('GET', `/devices/${device.id}/tokens`), 200);
    const pairing = must('pairing token', await admin('POST', `/devices/${device.id}/pairing-tokens`, {}), 201);
    const profile = must(
      'profile',
      await admin('POST', '/qa/profiles', {
        name: 'hostile profile',
        robot_type: 'hostile-robot',
        rules: GOOD_PROFILE,
      }),
      201,
    );
    const run = must('bulk run', await operator('POST', '/data-ops/bulk-qa', { filters: {}, confirm: true }), 202);
    await waitFor(
      async () => (await operator('GET', `/data-ops/bulk-runs/${run.body.run_id}`)).body.status === 'completed',
      { timeoutMs: 30_000, what: 'the bulk run to complete' },
    );
    fixtures = {
      // Keyed by the collection a path parameter follows (resourceOf) or a `<thing>_id` field names.
      ids: {
        scenes: sceneId,
        orders: world.orderId,
        workstations: world.workstationId,
        batches: world.batchId,
        tasks: world.taskIds[2]!,
        episodes: episodeId,
        devices: device.id,
        tokens: tokens.body.items[0].id,
        uploads: open.body.id,
        profiles: profile.body.id,
        'bulk-runs': run.body.run_id,
      },
      idsByOperation: {
        'DELETE /api/v1/scenes/{id}': { scenes: spareScene.body.id },
        'DELETE /api/v1/orders/{id}': { orders: spareOrder.body.id },
        'DELETE /api/v1/workstations/{id}': { workstations: spareWorkstation.body.id },
        'DELETE /api/v1/batches/{id}': { batches: spareBatch.body.batch.id },
        'POST /api/v1/uploads/{id}/fail': { uploads: openToFail.body.id },
      },
      query: Object.fromEntries([...partUrl.searchParams].map(([k, v]) => [k, encodeURIComponent(v)])),
      // The ETag the part PUT answers (the local store's: the part's sha256), for the part receipt.
      fields: { pairing_token: pairing.body.pairing_token, etag: createHash('sha256').update(part).digest('hex') },
      rawBody: part,
    };
    await settled(system);
  }, 180_000);
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
      device: `Bearer ${world.device.token}`,
    };
    // A uuid path parameter with no fixture (a resource added since) still gets its cases, against a
    // random id, where a request that slipped through could hide behind a 404: said out loud.
    const randomOnly: string[] = [];
    const onRandomId = (operation: string, param: string) => randomOnly.push(`${operation} {${param}}`);
    const cases = [
      ...operations.flatMap((op) => hostileCases(doc, op, { fixtures, auth, onRandomId })),
      ...globalCases(operations, auth.valid),
    ];
    expect(
      randomOnly,
      'no fixture for these path parameters, so their cases would run against random ids only, where a request ' +
        'that slipped through hides behind a 404: add a resource of that kind to the fixtures',
    ).toEqual([]);

    const before = await fingerprint(system);
    // The read-back covers every service's schema and the blob store, not only production's tables.
    for (const schema of ['production', 'transfer', 'qa', 'gateway']) {
      expect(Object.keys(before).some((t) => t.startsWith(`${system.infra.ns.schema(schema)}.`))).toBe(true);
    }
    expect(before.blobs).not.toBe('');
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
    // A request that slipped through may have written nothing yet but an event whose effect comes later:
    // read back once every outbox, stream and consumer is still.
    await settled(system);
    const after = await fingerprint(system);

    console.log(`bad-input suite: ${cases.length} cases over ${operations.length} operations`);
    expect(failures).toEqual([]);
    expect(cases.length).toBeGreaterThanOrEqual(1_000);
    expect(after).toEqual(before);

    // Each operation's base request, the one every case alters in one place, succeeds as it is: were it
    // refused itself (a wrong fixture, a state that no longer takes it), each case could pass on that refusal.
    const unplanned = operations
      .map((op) => `${op.method} ${op.path}`)
      .filter((label) => !label.startsWith('GET ') && !REPLAY_ORDER.includes(label));
    expect(unplanned, 'add these operations to REPLAY_ORDER').toEqual([]);
    const rank = (label: string) => (label.startsWith('GET ') ? -1 : REPLAY_ORDER.indexOf(label));
    const replays = operations
      .map((op) => baseRequest(doc, op, { fixtures, auth }))
      .sort((a, b) => rank(a.operation) - rank(b.operation));
    const refused: string[] = [];
    for (const request of replays) {
      const outcome = await send(base, request);
      if (outcome.status < 200 || outcome.status > 299) {
        refused.push(`${request.operation}: ${outcome.status} ${outcome.text.slice(0, 200)}`);
        continue;
      }
      await AFTER_REPLAY[request.operation]?.(JSON.parse(outcome.text), world);
    }
    expect(refused).toEqual([]);
    // The gateway survived all of it.
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
  });
});
