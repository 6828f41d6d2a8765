import type { Device, DeviceListFilter } from '@ferry/contracts';
import { isUniqueViolation } from '@ferry/platform';
import { Injectable } from '@nestjs/common';
import type { Insertable, Kysely, Selectable, Updateable } from 'kysely';
import { sql } from 'kysely';
import type { DevicesTable, DeviceTokensTable, PairingTokensTable, TransferDB } from '../database.js';

type Db = Kysely<TransferDB>;
export type DeviceRow = Selectable<DevicesTable>;
export type DeviceTokenRow = Selectable<DeviceTokensTable>;
export type PairingTokenRow = Selectable<PairingTokensTable>;

export class DeviceIdTaken extends Error {
  override readonly name = 'DeviceIdTaken';
}

export function toDevice(row: DeviceRow): Device {
  return {
    id: row.id,
    organization_id: row.organization_id,
    device_id: row.device_id,
    serial: row.serial,
    name: row.name,
    robot_type: row.robot_type,
    expected_topics: row.expected_topics,
    metadata: row.metadata,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
}

/** Devices and their tokens; the only place kysely touches these tables. */
@Injectable()
export class DeviceRepository {
  async insert(db: Db, row: Insertable<DevicesTable>): Promise<DeviceRow> {
    try {
      return await db.insertInto('devices').values(row).returningAll().executeTakeFirstOrThrow();
    } catch (err) {
      if (isUniqueViolation(err, 'devices_org_device_live_key')) throw new DeviceIdTaken();
      throw err;
    }
  }

  async find(db: Db, org: string, id: string, options: { lock?: boolean } = {}): Promise<DeviceRow | undefined> {
    let q = db
      .selectFrom('devices')
      .selectAll()
      .where('id', '=', id)
      .where('organization_id', '=', org)
      .where('deleted_at', 'is', null);
    if (options.lock) q = q.forUpdate();
    return q.executeTakeFirst();
  }

  async list(db: Db, org: string, f: DeviceListFilter, after?: string): Promise<DeviceRow[]> {
    let q = db.selectFrom('devices').selectAll().where('organization_id', '=', org).where('deleted_at', 'is', null);
    if (f.device_id) q = q.where('device_id', '=', f.device_id);
    if (f.robot_type) q = q.where('robot_type', '=', f.robot_type);
    if (after) q = q.where('id', '<', after);
    return q
      .orderBy('id', 'desc')
      .limit(f.limit + 1)
      .execute();
  }

  async update(db: Db, id: string, patch: Updateable<DevicesTable>): Promise<DeviceRow> {
    return db
      .updateTable('devices')
      .set({ ...patch, updated_at: new Date() })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirstOrThrow();
  }

  /** Soft delete, stamped with the transaction's time (`now()`), like the revocations that go with it. */
  async softDelete(db: Db, id: string): Promise<Date> {
    const row = await db
      .updateTable('devices')
      .set({ deleted_at: sql<Date>`now()`, updated_at: sql<Date>`now()` })
      .where('id', '=', id)
      .where('deleted_at', 'is', null)
      .returning('deleted_at')
      .executeTakeFirstOrThrow();
    return row.deleted_at!;
  }

  // ------------------------------------------------------------------------------ pairing tokens

  async insertPairingToken(db: Db, row: Insertable<PairingTokensTable>): Promise<PairingTokenRow> {
    return db.insertInto('pairing_tokens').values(row).returningAll().executeTakeFirstOrThrow();
  }

  async findPairingToken(db: Db, hash: Buffer): Promise<PairingTokenRow | undefined> {
    return db.selectFrom('pairing_tokens').selectAll().where('token_hash', '=', hash).executeTakeFirst();
  }

  /**
   * Redeems a pairing token once: a compare-and-set on `redeemed_at`, so of two concurrent
   * redemptions exactly one gets the row back.
   */
  async redeemPairingToken(db: Db, hash: Buffer): Promise<PairingTokenRow | undefined> {
    return db
      .updateTable('pairing_tokens')
      .set({ redeemed_at: new Date() })
      .where('token_hash', '=', hash)
      .where('redeemed_at', 'is', null)
      .where('expires_at', '>', sql<Date>`now()`)
      .returningAll()
      .executeTakeFirst();
  }

  // -------------------------------------------------------------------------------- device tokens

  async insertDeviceToken(db: Db, row: Insertable<DeviceTokensTable>): Promise<DeviceTokenRow> {
    return db.insertInto('device_tokens').values(row).returningAll().executeTakeFirstOrThrow();
  }

  /** A live token (not revoked, its device not deleted) with its device. */
  async findLiveToken(db: Db, hash: Buffer): Promise<{ token: DeviceTokenRow; device: DeviceRow } | undefined> {
    const token = await db
      .selectFrom('device_tokens')
      .selectAll()
      .where('token_hash', '=', hash)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return this.withLiveDevice(db, token);
  }

  /** As findLiveToken, by the token's id, within an organization. */
  async findLiveTokenById(
    db: Db,
    org: string,
    id: string,
  ): Promise<{ token: DeviceTokenRow; device: DeviceRow } | undefined> {
    const token = await db
      .selectFrom('device_tokens')
      .selectAll()
      .where('id', '=', id)
      .where('organization_id', '=', org)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return this.withLiveDevice(db, token);
  }

  private async withLiveDevice(
    db: Db,
    token: DeviceTokenRow | undefined,
  ): Promise<{ token: DeviceTokenRow; device: DeviceRow } | undefined> {
    if (!token) return undefined;
    const device = await db
      .selectFrom('devices')
      .selectAll()
      .where('id', '=', token.device_ref)
      .where('deleted_at', 'is', null)
      .executeTakeFirst();
    return device ? { token, device } : undefined;
  }

  /** Records use at most once a minute per token, so authentication stays a read in the common case. */
  async touchToken(db: Db, id: string): Promise<void> {
    await db
      .updateTable('device_tokens')
      .set({ last_used_at: new Date() })
      .where('id', '=', id)
      .where((eb) =>
        eb.or([eb('last_used_at', 'is', null), eb('last_used_at', '<', sql<Date>`now() - interval '1 minute'`)]),
      )
      .execute();
  }

  async tokensOf(db: Db, deviceRef: string): Promise<DeviceTokenRow[]> {
    return db
      .selectFrom('device_tokens')
      .selectAll()
      .where('device_ref', '=', deviceRef)
      .orderBy('id', 'desc')
      .execute();
  }

  async findToken(db: Db, deviceRef: string, id: string, options: { lock?: boolean } = {}) {
    let q = db.selectFrom('device_tokens').selectAll().where('device_ref', '=', deviceRef).where('id', '=', id);
    if (options.lock) q = q.forUpdate();
    return q.executeTakeFirst();
  }

  async revokeToken(db: Db, id: string): Promise<DeviceTokenRow> {
    return db
      .updateTable('device_tokens')
      .set({ revoked_at: sql<Date>`coalesce(revoked_at, now())` })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirstOrThrow();
  }

  /** Revokes every live token of a device (and voids its unredeemed pairing tokens); returns how many. */
  async revokeAll(db: Db, deviceRef: string): Promise<number> {
    await db
      .updateTable('pairing_tokens')
      .set({ expires_at: new Date() })
      .where('device_ref', '=', deviceRef)
      .where('redeemed_at', 'is', null)
      .execute();
    const rows = await db
      .updateTable('device_tokens')
      .set({ revoked_at: sql<Date>`now()` })
      .where('device_ref', '=', deviceRef)
      .where('revoked_at', 'is', null)
      .returning('id')
      .execute();
    return rows.length;
  }
}
