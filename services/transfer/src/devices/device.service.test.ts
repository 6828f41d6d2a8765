import type { Actor } from '@ferry/contracts';
import { DomainError } from '@ferry/platform';
import { sql } from 'kysely';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TransferFixture, transferFixture } from '../testing/transfer-fixture.js';
import { hashToken } from './opaque-token.js';

const admin = (org: string): Actor => ({ kind: 'user', sub: 'admin-test', org, role: 'admin' });

/** Devices, pairing and device tokens against a real Postgres (transfer's own schema). */
describe('device service', () => {
  let f: TransferFixture;
  beforeAll(async () => {
    f = await transferFixture();
  });
  afterAll(() => f?.cleanup());

  const register = (org: string, deviceId: string, extra: { robot_type?: string } = {}) =>
    f.tx((trx) =>
      f.devices.create(admin(org), { device_id: deviceId, expected_topics: [], metadata: {}, ...extra }, trx),
    );

  const refusal = (p: Promise<unknown>) =>
    p.then(
      () => {
        throw new Error('expected a refusal');
      },
      (err: unknown) => {
        if (!(err instanceof DomainError)) throw err;
        return err;
      },
    );

  const tokenCount = async (deviceRef: string) =>
    (await f.db.selectFrom('device_tokens').select('id').where('device_ref', '=', deviceRef).execute()).length;

  describe('pairing tokens', () => {
    it('expire ttl_seconds after they are created', async () => {
      const org = uuidv7();
      const device = await register(org, 'arm-ttl');
      for (const ttl of [30, 600, 86_400]) {
        const before = Date.now();
        const pairing = await f.tx((trx) => f.devices.createPairingToken(admin(org), device.id, ttl, trx));
        const after = Date.now();
        const expires = Date.parse(pairing.expires_at);
        expect(expires, `ttl ${ttl}`).toBeGreaterThanOrEqual(before + ttl * 1000);
        expect(expires, `ttl ${ttl}`).toBeLessThanOrEqual(after + ttl * 1000);
        // What is stored is what redemption checks.
        const row = await f.db
          .selectFrom('pairing_tokens')
          .select('expires_at')
          .where('token_hash', '=', hashToken(pairing.pairing_token))
          .executeTakeFirstOrThrow();
        expect(row.expires_at.getTime()).toBe(expires);
      }
    });

    it('refuses a pairing token past its expiry as it refuses an unknown one, and issues no device token', async () => {
      const org = uuidv7();
      const device = await register(org, 'arm-expired');
      const pairing = await f.tx((trx) => f.devices.createPairingToken(admin(org), device.id, 30, trx));
      // Its 30 s have passed (the database's clock decides, as redemption reads now() there).
      await sql`update pairing_tokens set expires_at = now() - interval '1 second'
        where token_hash = ${hashToken(pairing.pairing_token)}`.execute(f.db);
      const expired = await refusal(f.tx((trx) => f.devices.redeem(pairing.pairing_token, undefined, trx)));
      const unknown = await refusal(f.tx((trx) => f.devices.redeem(`fpt_${'x'.repeat(43)}`, undefined, trx)));
      expect(expired.code).toBe('unauthenticated');
      expect(unknown.code).toBe('unauthenticated');
      expect(expired.message).toMatch(/has expired; ask an admin for a new one$/);
      expect(await tokenCount(device.id)).toBe(0);
    });

    it('is redeemed once: the second redemption is refused', async () => {
      const org = uuidv7();
      const device = await register(org, 'arm-once');
      const pairing = await f.tx((trx) => f.devices.createPairingToken(admin(org), device.id, 600, trx));
      const issued = await f.tx((trx) => f.devices.redeem(pairing.pairing_token, 'main', trx));
      expect(issued).toMatchObject({ token: expect.stringMatching(/^fdt_/), device: { id: device.id } });
      const again = await refusal(f.tx((trx) => f.devices.redeem(pairing.pairing_token, 'main', trx)));
      expect(again.code).toBe('unauthenticated');
      expect(again.message).toMatch(/was already used/);
      expect(await tokenCount(device.id)).toBe(1);
    });

    it('are not created for another organization’s device (404)', async () => {
      const device = await register(uuidv7(), 'arm-foreign');
      const err = await refusal(f.tx((trx) => f.devices.createPairingToken(admin(uuidv7()), device.id, 600, trx)));
      expect(err.code).toBe('not_found');
    });
  });

  describe('the registry', () => {
    it('refuses a second live device with the same device_id in an organization, but not in another one', async () => {
      const org = uuidv7();
      await register(org, 'arm-dup');
      const err = await refusal(register(org, 'arm-dup'));
      expect(err).toMatchObject({ code: 'name_taken', details: { field: 'device_id', device_id: 'arm-dup' } });
      await expect(register(uuidv7(), 'arm-dup')).resolves.toMatchObject({ device_id: 'arm-dup' });
      const { items } = await f.devices.list(admin(org), { limit: 50, device_id: 'arm-dup' });
      expect(items).toHaveLength(1);
    });

    it('registers a device_id again once its device is deleted: a new record, the old one gone', async () => {
      const org = uuidv7();
      const first = await register(org, 'arm-again');
      await f.tx((trx) => f.devices.delete(admin(org), first.id, trx));
      const second = await register(org, 'arm-again');
      expect(second.id).not.toBe(first.id);
      expect((await refusal(f.devices.get(admin(org), first.id))).code).toBe('not_found');
      expect(await f.devices.get(admin(org), second.id)).toMatchObject({ device_id: 'arm-again' });
    });

    it('updates the given fields only, tells subscribers which changed, and keeps the device_id', async () => {
      const org = uuidv7();
      const device = await register(org, 'arm-patch', { robot_type: 'arm-v1' });
      const updated = await f.tx((trx) =>
        f.devices.update(admin(org), device.id, { name: 'Left arm', expected_topics: ['/camera/front'] }, trx),
      );
      expect(updated).toMatchObject({
        id: device.id,
        device_id: 'arm-patch',
        name: 'Left arm',
        robot_type: 'arm-v1',
        expected_topics: ['/camera/front'],
      });
      expect(await f.devices.get(admin(org), device.id)).toEqual(updated);
      const events = (await f.outboxEvents('transfer.evt.device.updated.v1')).filter(
        (e) => e.payload.device.id === device.id,
      );
      expect(events.map((e) => e.payload.changed)).toEqual([['name', 'expected_topics']]);
      // Another organization's admin cannot touch it.
      const err = await refusal(f.tx((trx) => f.devices.update(admin(uuidv7()), device.id, { name: 'x' }, trx)));
      expect(err.code).toBe('not_found');
      expect((await f.devices.get(admin(org), device.id)).name).toBe('Left arm');
    });

    it('lists live devices of the organization newest first, filtered, a page at a time without repeats', async () => {
      const org = uuidv7();
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) {
        ids.push((await register(org, `arm-list-${i}`, { robot_type: i % 2 ? 'arm-v2' : 'arm-v1' })).id);
      }
      await f.tx((trx) => f.devices.delete(admin(org), ids[4]!, trx));
      await register(uuidv7(), 'arm-list-0'); // another organization's
      const seen: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await f.devices.list(admin(org), { limit: 2, ...(cursor ? { cursor } : {}) });
        expect(page.items.length).toBeLessThanOrEqual(2);
        seen.push(...page.items.map((d) => d.id));
        cursor = page.next_cursor ?? undefined;
      } while (cursor);
      expect(seen).toEqual(ids.slice(0, 4).reverse());
      const v2 = await f.devices.list(admin(org), { limit: 50, robot_type: 'arm-v2' });
      expect(v2.items.map((d) => d.device_id)).toEqual(['arm-list-3', 'arm-list-1']);
      const one = await f.devices.list(admin(org), { limit: 50, device_id: 'arm-list-2' });
      expect(one.items.map((d) => d.id)).toEqual([ids[2]]);
    });
  });

  describe('the device behind a device token', () => {
    it('is the record the token was issued to, never another device registered under its device_id', async () => {
      const org = uuidv7();
      const first = await register(org, 'arm-successor');
      const old = await f.deviceActor(admin(org), first.id);
      expect((await f.devices.forActor(old)).id).toBe(first.id);
      await f.tx((trx) => f.devices.delete(admin(org), first.id, trx));
      const second = await register(org, 'arm-successor');
      // The old actor names the same device_id and organization, as a gateway's cache may still hold it.
      expect(old.sub).toBe(second.device_id);
      expect((await refusal(f.devices.forActor(old))).code).toBe('unauthenticated');
      const fresh = await f.deviceActor(admin(org), second.id);
      expect((await f.devices.forActor(fresh)).id).toBe(second.id);
    });

    it('stops being found the moment its token is revoked', async () => {
      const org = uuidv7();
      const device = await register(org, 'arm-revoked');
      const actor = await f.deviceActor(admin(org), device.id);
      await f.tx((trx) => f.devices.revokeToken(admin(org), device.id, actor.device!.token_id, trx));
      expect((await refusal(f.devices.forActor(actor))).code).toBe('unauthenticated');
    });

    it('is refused to an actor that carries no device record, or one from another organization', async () => {
      const org = uuidv7();
      const device = await register(org, 'arm-bare');
      const actor = await f.deviceActor(admin(org), device.id);
      const { device: _, ...bare } = actor;
      expect((await refusal(f.devices.forActor(bare))).code).toBe('unauthenticated');
      expect((await refusal(f.devices.forActor({ ...actor, org: uuidv7() }))).code).toBe('unauthenticated');
    });
  });
});
