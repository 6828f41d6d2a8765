import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { PartTarget, Upload } from '@ferry/contracts';
import { sql } from 'kysely';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// The real signer, to make a URL that expired already (a test can wait out no URL: they live 60 s at least).
import { PartUrlSigner } from '../../services/transfer/src/uploads/part-urls.js';
import { type DeviceWorld, deviceWorld, pairDevice } from '../support/device-world.js';
import { System } from '../support/system.js';

const PART = Buffer.alloc(1024, 7);
const PART_SHA = createHash('sha256').update(PART).digest('hex');

/**
 * Devices over HTTP through real processes: the registry's rules and who may change it, pairing, which
 * tasks a device sees, and what a device token reaches — a gateway that trusts a token from its cache
 * (10 minutes here) included.
 */
describe('devices', () => {
  let system: System;

  beforeAll(async () => {
    system = await System.create();
    await system.start(['production', 'transfer', 'gateway'], { env: { DEVICE_TOKEN_CACHE_TTL_MS: '600000' } });
  }, 120_000);
  afterAll(() => system?.shutdown());

  /** `w`'s device finishes recording `taskId` and opens an upload of one 1 KiB part for it. */
  async function openUpload(w: DeviceWorld, taskId: string, token = w.device.token): Promise<Upload> {
    expect((await system.client(token)('POST', `/tasks/${taskId}/finish`, {})).status).toBe(200);
    const opened = await w
      .uploader({ token })
      .open(taskId, [{ role: 'mcap', size_bytes: PART.length, sha256: PART_SHA }]);
    expect(opened.status).toBe(201);
    return opened.body;
  }

  const put = (w: DeviceWorld, t: PartTarget, token?: string) =>
    w.uploader(token ? { token } : {}).putPart(t, Readable.from([PART]));

  describe('the registry', () => {
    it('answers a second live device_id in the organization 409 name_taken, and registers it again once deleted (201)', async () => {
      const w = await deviceWorld(system);
      const taken = await w.operator('POST', '/devices', { device_id: w.device.device_id });
      expect(taken.status).toBe(409);
      expect(taken.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(taken.body).toMatchObject({ code: 'name_taken', details: { device_id: w.device.device_id } });
      const list = await w.operator('GET', `/devices?device_id=${w.device.device_id}`);
      expect(list.body.items.map((d: { id: string }) => d.id)).toEqual([w.device.id]);

      expect((await w.operator('DELETE', `/devices/${w.device.id}`)).status).toBe(204);
      const again = await w.operator('POST', '/devices', { device_id: w.device.device_id });
      expect(again.status).toBe(201);
      expect(again.body.id).not.toBe(w.device.id);
      const after = await w.operator('GET', `/devices?device_id=${w.device.device_id}`);
      expect(after.body.items.map((d: { id: string }) => d.id)).toEqual([again.body.id]);
    });

    it('updates a device with PATCH and refuses a change of device_id or an empty patch (400, nothing changed)', async () => {
      const w = await deviceWorld(system);
      const patched = await w.operator('PATCH', `/devices/${w.device.id}`, {
        name: 'Left arm',
        serial: 'SN-1',
        expected_topics: ['/camera/front'],
      });
      expect(patched.status).toBe(200);
      expect(patched.body).toMatchObject({
        id: w.device.id,
        device_id: w.device.device_id,
        name: 'Left arm',
        serial: 'SN-1',
        robot_type: 'arm-v1',
        expected_topics: ['/camera/front'],
      });
      for (const body of [{ device_id: 'renamed' }, {}]) {
        const refused = await w.operator('PATCH', `/devices/${w.device.id}`, body);
        expect(refused.status, JSON.stringify(body)).toBe(400);
        expect(refused.body.code).toBe('validation_failed');
      }
      expect((await w.operator('GET', `/devices/${w.device.id}`)).body).toEqual(patched.body);
    });

    it('lists the organization’s devices newest first, filtered, a page at a time', async () => {
      const org = uuidv7();
      const operator = system.client(await system.token(org, 'operator'));
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) {
        const d = await operator('POST', '/devices', {
          device_id: `arm-${i}`,
          robot_type: i % 2 ? 'arm-v2' : 'arm-v1',
        });
        ids.push(d.body.id);
      }
      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const page: { status: number; body: { items: { id: string }[]; next_cursor: string | null } } = await operator(
          'GET',
          `/devices?limit=2${cursor ? `&cursor=${cursor}` : ''}`,
        );
        expect(page.status).toBe(200);
        expect(page.body.items.length).toBeLessThanOrEqual(2);
        seen.push(...page.body.items.map((d) => d.id));
        cursor = page.body.next_cursor;
      } while (cursor);
      expect(seen).toEqual([...ids].reverse());
      const v2 = await operator('GET', '/devices?robot_type=arm-v2');
      expect(v2.body.items.map((d: { device_id: string }) => d.device_id)).toEqual(['arm-3', 'arm-1']);
      const bad = await operator('GET', '/devices?cursor=not*a*cursor');
      expect(bad.status).toBe(400);
      expect(bad.body.errors).toContainEqual(expect.objectContaining({ path: 'query.cursor' }));
    });

    it('lets a viewer read devices but change nothing (403 on every write)', async () => {
      const w = await deviceWorld(system);
      const viewer = system.client(await system.token(w.org, 'viewer'));
      expect((await viewer('GET', '/devices')).status).toBe(200);
      expect((await viewer('GET', `/devices/${w.device.id}`)).status).toBe(200);
      expect((await viewer('GET', `/devices/${w.device.id}/tokens`)).status).toBe(200);
      const tokens = await w.operator('GET', `/devices/${w.device.id}/tokens`);
      const writes: [string, string, unknown?][] = [
        ['POST', '/devices', { device_id: `arm-${uuidv7().slice(-8)}` }],
        ['PATCH', `/devices/${w.device.id}`, { name: 'renamed' }],
        ['DELETE', `/devices/${w.device.id}`],
        ['POST', `/devices/${w.device.id}/pairing-tokens`, {}],
        ['DELETE', `/devices/${w.device.id}/tokens/${tokens.body.items[0].id}`],
      ];
      for (const [method, path, body] of writes) {
        const res = await viewer(method, path, body);
        expect(res.status, `${method} ${path}`).toBe(403);
        expect(res.body.code, `${method} ${path}`).toBe('forbidden');
      }
      expect((await w.operator('GET', `/devices/${w.device.id}`)).body.name).toBe(w.device.device_id);
      expect((await w.operator('GET', `/devices/${w.device.id}/tokens`)).body.items[0].revoked_at).toBeNull();
      expect((await w.device.api('GET', '/device/tasks')).status).toBe(200);
    });
  });

  describe('pairing', () => {
    it('lets only an admin create a pairing token (an operator gets 403), with the lifetime asked for', async () => {
      const w = await deviceWorld(system);
      const refused = await w.operator('POST', `/devices/${w.device.id}/pairing-tokens`, {});
      expect(refused.status).toBe(403);
      expect(refused.body).toMatchObject({ code: 'forbidden', details: { required_roles: ['admin'] } });
      const before = Date.now();
      const created = await w.admin('POST', `/devices/${w.device.id}/pairing-tokens`, { ttl_seconds: 30 });
      const after = Date.now();
      expect(created.status).toBe(201);
      const expires = Date.parse(created.body.expires_at);
      expect(expires).toBeGreaterThanOrEqual(before + 30_000);
      expect(expires).toBeLessThanOrEqual(after + 30_000);
      const tooShort = await w.admin('POST', `/devices/${w.device.id}/pairing-tokens`, { ttl_seconds: 10 });
      expect(tooShort.status).toBe(400);
      expect(tooShort.body.errors).toContainEqual(expect.objectContaining({ path: 'body.ttl_seconds' }));
    });

    it('refuses an expired pairing token exactly as an unknown one: 401, no device token issued', async () => {
      const w = await deviceWorld(system);
      const pairing = await w.admin('POST', `/devices/${w.device.id}/pairing-tokens`, { ttl_seconds: 30 });
      // Its 30 s have passed, on the clock redemption reads (the database's).
      await sql`update pairing_tokens set expires_at = now() - interval '1 second'
        where device_ref = ${w.device.id} and redeemed_at is null`.execute(system.infra.database('transfer').db);
      const redeem = async (pairing_token: string) => {
        const res = await fetch(`${system.gatewayUrl}/api/v1/device-tokens`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ pairing_token }),
        });
        return { status: res.status, type: res.headers.get('content-type'), body: (await res.json()) as any };
      };
      const expired = await redeem(pairing.body.pairing_token);
      const unknown = await redeem(`fpt_${'x'.repeat(43)}`);
      for (const res of [expired, unknown]) {
        expect(res.status).toBe(401);
        expect(res.type).toMatch(/^application\/problem\+json/);
        expect(res.body.code).toBe('unauthenticated');
      }
      // Only the world's own token: the expired pairing issued none.
      expect((await w.operator('GET', `/devices/${w.device.id}/tokens`)).body.items).toHaveLength(1);
    });
  });

  describe('a device’s tasks', () => {
    it('lists only the runnable tasks of the workstation the device is bound to', async () => {
      const a = await deviceWorld(system, { tasks: 3 });
      const b = await deviceWorld(system, { org: a.org, tasks: 3 });
      // a: pending, in_progress, uploading. b: ready, pending, failed.
      expect((await a.device.api('POST', `/tasks/${a.taskIds[1]}/start`, {})).status).toBe(200);
      expect((await a.device.api('POST', `/tasks/${a.taskIds[2]}/finish`, {})).status).toBe(200);
      expect((await b.device.api('POST', `/tasks/${b.taskIds[0]}/ready`, {})).status).toBe(200);
      expect((await b.device.api('POST', `/tasks/${b.taskIds[2]}/start`, {})).status).toBe(200);
      expect((await b.device.api('POST', `/tasks/${b.taskIds[2]}/fail`, { reason: 'arm jammed' })).status).toBe(200);
      const listed = async (w: DeviceWorld, query = '') => {
        const res = await w.device.api('GET', `/device/tasks${query}`);
        expect(res.status).toBe(200);
        return Object.fromEntries(res.body.items.map((t: { id: string; status: string }) => [t.id, t.status]));
      };
      expect(await listed(a)).toEqual({ [a.taskIds[0]!]: 'pending', [a.taskIds[1]!]: 'in_progress' });
      expect(await listed(b)).toEqual({ [b.taskIds[0]!]: 'ready', [b.taskIds[1]!]: 'pending' });
      expect(await listed(a, '?status=uploading')).toEqual({ [a.taskIds[2]!]: 'uploading' });
      expect(await listed(b, '?status=uploading')).toEqual({});
      // An operator sees both workstations' tasks in the organization: the scoping is the device's.
      const all = await a.operator('GET', '/tasks?limit=200');
      expect(all.body.items.length).toBeGreaterThanOrEqual(6);
      // A device of the organization bound to no workstation has nothing to do.
      const idle = await a.operator('POST', '/devices', { device_id: `arm-${uuidv7().slice(-8)}` });
      const unbound = system.client(await pairDevice(system, a.admin, idle.body.id));
      expect((await unbound('GET', '/device/tasks')).body).toEqual({ items: [], next_cursor: null });
    });
  });

  describe('a deleted device’s token', () => {
    it('never acts as a device registered again under its device_id, though the gateway still trusts it from its cache', async () => {
      const w = await deviceWorld(system, { tasks: 2 });
      const oldToken = w.device.token;
      // The old device opens an upload under an Idempotency-Key, and the gateway caches its token.
      await w.device.api('POST', `/tasks/${w.taskIds[1]}/finish`, {});
      const openBody = { task_id: w.taskIds[1], files: [{ role: 'mcap', size_bytes: PART.length, sha256: PART_SHA }] };
      const key = uuidv7();
      const first = await w.device.api('POST', '/uploads', openBody, { 'idempotency-key': key });
      expect(first.status).toBe(201);

      expect((await w.operator('DELETE', `/devices/${w.device.id}`)).status).toBe(204);
      const successor = await w.operator('POST', '/devices', { device_id: w.device.device_id });
      expect(successor.status).toBe(201);
      const newToken = await pairDevice(system, w.admin, successor.body.id);
      const u = await openUpload(w, w.taskIds[0]!, newToken);
      const t = u.parts![0]!;

      const old = system.client(oldToken);
      // The gateway still accepts the old token from its cache (the documented revocation window: on task
      // routes production knows a device only by its device_id) ...
      expect((await old('GET', '/device/tasks')).status).toBe(200);
      // ... but transfer checks the token's own record: nothing of the new device's is the old token's.
      const attempts: [string, string, unknown?][] = [
        ['GET', '/uploads'],
        ['GET', `/uploads/${u.id}`],
        ['POST', `/uploads/${u.id}/parts`, { file: 'mcap', part_number: 1, etag: 'x' }],
        ['POST', `/uploads/${u.id}/complete`],
        ['POST', `/uploads/${u.id}/fail`, { reason: 'not mine' }],
        ['POST', '/uploads', { task_id: w.taskIds[0], files: openBody.files }],
      ];
      for (const [method, path, body] of attempts) {
        const res = await old(method, path, body);
        expect(res.status, `${method} ${path}`).toBe(401);
        expect(res.body, `${method} ${path}`).toMatchObject({
          code: 'unauthenticated',
          detail: 'this device token was revoked or its device deleted; pair again',
        });
      }
      await expect(put(w, t, oldToken)).rejects.toMatchObject({ status: 401, body: { code: 'unauthenticated' } });
      // Nor is the old device's stored response handed to the new one under the same Idempotency-Key.
      const replay = await system.client(newToken)('POST', '/uploads', openBody, { 'idempotency-key': key });
      expect(replay.headers.get('idempotency-replayed')).toBeNull();
      expect(replay.status).toBe(409);
      expect(replay.body.code).toBe('conflict');
      // The new device's upload is untouched, and its own token works.
      const seen = await w.operator('GET', `/uploads/${u.id}`);
      expect(seen.body).toMatchObject({ status: 'open', device_id: w.device.device_id });
      expect(seen.body.files[0].received_parts).toEqual([]);
      expect(await put(w, t, newToken)).toBeTruthy();
      expect((await w.uploader({ token: newToken }).get(u.id)).files[0]!.received_parts).toEqual([1]);
    });
  });

  describe('part URLs', () => {
    it('refuses a validly signed part URL once it expired (403, the part still missing); fresh URLs work', async () => {
      const w = await deviceWorld(system);
      const upload = await openUpload(w, w.taskIds[0]!);
      const issued = upload.parts![0]!;
      // Part URLs live a minute at least: rather than wait one out, sign this part's URL as transfer does, with
      // the system's secret, already a minute past its expiry. Only the expiry is wrong with it: a URL with a bad
      // signature is refused with another detail.
      const signer = new PartUrlSigner(system.uploadSigningSecret);
      const ref = { uploadId: upload.id, file: issued.file, partNumber: issued.part_number };
      const stale = new URL(signer.url(ref, new Date(Date.now() - 60_000)), system.gatewayUrl);
      const refused = await fetch(stale, {
        method: 'PUT',
        headers: { authorization: `Bearer ${w.device.token}`, 'content-type': 'application/octet-stream' },
        body: PART,
      });
      expect(refused.status).toBe(403);
      expect(refused.headers.get('content-type')).toBe('application/problem+json');
      expect(await refused.json()).toMatchObject({
        code: 'forbidden',
        detail: 'this part URL has expired; GET the upload for fresh ones',
      });
      const after = await w.uploader().get(upload.id);
      expect(after.files[0]).toMatchObject({ received_parts: [], missing_parts: [1] });
      const fresh = after.parts![0]!;
      expect(Date.parse(fresh.expires_at)).toBeGreaterThan(Date.now());
      const etag = await put(w, fresh);
      const confirmed = await w.uploader().confirm(upload.id, fresh, etag);
      expect(confirmed.files[0]).toMatchObject({ received_parts: [1], missing_parts: [] });
    });
  });
});
