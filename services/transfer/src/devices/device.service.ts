import {
  type Actor,
  type CreateDeviceBody,
  type Device,
  type DeviceListFilter,
  deviceEvents,
  type Page,
  type UpdateDeviceBody,
} from '@ferry/contracts';
import { DomainError, decodeCursor, isIdCursor, newId, notFound, Outbox, toPage } from '@ferry/platform';
import { Injectable } from '@nestjs/common';
import { Kysely, type Transaction } from 'kysely';
import type { TransferDB } from '../database.js';
import { DeviceIdTaken, DeviceRepository, type DeviceRow, type DeviceTokenRow, toDevice } from './device.repository.js';
import { hashToken, newOpaqueToken } from './opaque-token.js';

type Trx = Transaction<TransferDB>;

function tokenInfo(row: DeviceTokenRow) {
  return {
    id: row.id,
    device: row.device_ref,
    label: row.label,
    created_at: row.created_at.toISOString(),
    last_used_at: row.last_used_at?.toISOString() ?? null,
    revoked_at: row.revoked_at?.toISOString() ?? null,
  };
}

/** Devices, pairing and device tokens (DESIGN §6). */
@Injectable()
export class DeviceService {
  constructor(
    private readonly db: Kysely<TransferDB>,
    private readonly devices: DeviceRepository,
    private readonly outbox: Outbox,
  ) {}

  private async live(db: Kysely<TransferDB>, actor: Actor, id: string, lock = false): Promise<DeviceRow> {
    const row = await this.devices.find(db, actor.org, id, { lock });
    if (!row) throw notFound('Device', id);
    return row;
  }

  async create(actor: Actor, body: CreateDeviceBody, trx: Trx): Promise<Device> {
    const row = await this.devices
      .insert(trx, {
        id: newId(),
        organization_id: actor.org,
        device_id: body.device_id,
        serial: body.serial ?? null,
        name: body.name ?? body.device_id,
        robot_type: body.robot_type ?? null,
        expected_topics: body.expected_topics,
        metadata: JSON.stringify(body.metadata),
      })
      .catch((err) => {
        if (err instanceof DeviceIdTaken) {
          throw new DomainError('name_taken', `a device ${body.device_id} is already registered in this organization`, {
            field: 'device_id',
            device_id: body.device_id,
          });
        }
        throw err;
      });
    const device = toDevice(row);
    await this.outbox.append(trx, deviceEvents.registered, { device }, { aggregateId: device.id });
    return device;
  }

  async get(actor: Actor, id: string): Promise<Device> {
    return toDevice(await this.live(this.db, actor, id));
  }

  async list(actor: Actor, filter: DeviceListFilter): Promise<Page<Device>> {
    const after = filter.cursor ? decodeCursor(filter.cursor, isIdCursor).id : undefined;
    const rows = await this.devices.list(this.db, actor.org, filter, after);
    return toPage(rows, filter.limit, toDevice, (r) => ({ id: r.id }));
  }

  async update(actor: Actor, id: string, patch: UpdateDeviceBody, trx: Trx): Promise<Device> {
    await this.live(trx, actor, id, true);
    const row = await this.devices.update(trx, id, {
      ...(patch.serial !== undefined ? { serial: patch.serial } : {}),
      ...(patch.name !== undefined ? { name: patch.name } : {}),
      ...(patch.robot_type !== undefined ? { robot_type: patch.robot_type } : {}),
      ...(patch.expected_topics !== undefined ? { expected_topics: patch.expected_topics } : {}),
      ...(patch.metadata !== undefined ? { metadata: JSON.stringify(patch.metadata) } : {}),
    });
    const device = toDevice(row);
    await this.outbox.append(trx, deviceEvents.updated, { device, changed: Object.keys(patch) }, { aggregateId: id });
    return device;
  }

  /** Soft delete; every token of the device is revoked in the same transaction. */
  async delete(
    actor: Actor,
    id: string,
    trx: Trx,
  ): Promise<{ id: string; deleted_at: string; tokens_revoked: number }> {
    const row = await this.live(trx, actor, id, true);
    const tokensRevoked = await this.devices.revokeAll(trx, id);
    const deletedAt = (await this.devices.softDelete(trx, id)).toISOString();
    await this.outbox.append(
      trx,
      deviceEvents.deleted,
      { device: toDevice(row), deleted_at: deletedAt, tokens_revoked: tokensRevoked },
      { aggregateId: id },
    );
    return { id, deleted_at: deletedAt, tokens_revoked: tokensRevoked };
  }

  /** A short-lived, single-use pairing token for the device, shown once. */
  async createPairingToken(actor: Actor, id: string, ttlSeconds: number, trx: Trx) {
    const device = await this.live(trx, actor, id);
    const { token, hash } = newOpaqueToken('fpt');
    const expiresAt = new Date(Date.now() + ttlSeconds * 1000);
    await this.devices.insertPairingToken(trx, {
      token_hash: hash,
      id: newId(),
      organization_id: actor.org,
      device_ref: device.id,
      created_by: actor.sub,
      expires_at: expiresAt,
    });
    return { pairing_token: token, device_id: device.device_id, expires_at: expiresAt.toISOString() };
  }

  /**
   * Exchanges a pairing token (the device's only credential at that point) for a device token, once:
   * the redemption is a compare-and-set, and the device token's unique pairing reference backs it.
   */
  async redeem(pairingToken: string, label: string | undefined, trx: Trx) {
    const hash = hashToken(pairingToken);
    const pairing = await this.devices.redeemPairingToken(trx, hash);
    if (!pairing) {
      const known = await this.devices.findPairingToken(trx, hash);
      const why = !known ? 'is not known' : known.redeemed_at ? 'was already used' : 'has expired';
      throw new DomainError('unauthenticated', `the pairing token ${why}; ask an admin for a new one`);
    }
    const device = await this.devices.find(trx, pairing.organization_id, pairing.device_ref);
    if (!device) throw new DomainError('unauthenticated', 'the pairing token’s device was deleted');
    const { token, hash: tokenHash } = newOpaqueToken('fdt');
    const row = await this.devices.insertDeviceToken(trx, {
      id: newId(),
      token_hash: tokenHash,
      organization_id: device.organization_id,
      device_ref: device.id,
      pairing_token_id: pairing.id,
      label: label ?? null,
    });
    return { token, token_id: row.id, device: toDevice(device) };
  }

  async listTokens(actor: Actor, id: string) {
    const device = await this.live(this.db, actor, id);
    return { items: (await this.devices.tokensOf(this.db, device.id)).map(tokenInfo) };
  }

  async revokeToken(actor: Actor, id: string, tokenId: string, trx: Trx) {
    const device = await this.live(trx, actor, id);
    const token = await this.devices.findToken(trx, device.id, tokenId, { lock: true });
    if (!token) throw notFound('Device token', tokenId);
    return tokenInfo(await this.devices.revokeToken(trx, token.id));
  }

  /** Who holds this device token; `unauthenticated` when it is unknown, revoked or its device deleted. */
  async authenticate(token: string): Promise<{ device: Device; token_id: string }> {
    const found = await this.devices.findLiveToken(this.db, hashToken(token));
    if (!found) throw new DomainError('unauthenticated', 'device token is not valid');
    await this.devices.touchToken(this.db, found.token.id);
    return { device: toDevice(found.device), token_id: found.token.id };
  }

  /**
   * The device behind a device actor: the record its token was issued to, while that token is live (not
   * revoked, its device not deleted). Never looked up by `device_id`: a device deleted and registered again
   * under the same name is another record, and the first one's token — which a gateway may still trust from
   * its cache — must not act as it. Checked on every call, so revocation takes effect here at once.
   */
  async forActor(actor: Actor, db: Kysely<TransferDB> = this.db): Promise<DeviceRow> {
    const found = actor.device && (await this.devices.findLiveTokenById(db, actor.org, actor.device.token_id));
    if (!found || found.device.id !== actor.device?.id) {
      throw new DomainError('unauthenticated', 'this device token was revoked or its device deleted; pair again', {
        www_authenticate: 'Bearer error="invalid_token"',
      });
    }
    return found.device;
  }
}
