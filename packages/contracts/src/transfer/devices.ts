import { z } from 'zod';
import { defineEvent, defineRpc } from '../messaging.js';
import { PageQuery, pageOf } from '../pagination.js';
import { Metadata, Name, Timestamp, Uuid } from '../primitives.js';
import { DeviceId } from '../production/workstations.js';

/** A ROS-style topic name a device is expected to record (`/camera/front/image_raw`). */
export const TopicName = z
  .string()
  .min(1)
  .max(256)
  .regex(/^\/?[A-Za-z0-9_~][A-Za-z0-9_/~.-]*$/, 'a topic name like /camera/image_raw');

export const RobotType = z
  .string()
  .trim()
  .min(1)
  .max(100)
  .regex(/^[A-Za-z0-9][A-Za-z0-9 ._:-]*$/, 'letters, digits, space and . _ : - only');

export const Device = z
  .object({
    id: Uuid,
    organization_id: Uuid,
    /** The robot's own id, as it reports itself and as workstations name it (`arm-0042`). */
    device_id: z.string(),
    serial: z.string().nullable(),
    name: z.string(),
    robot_type: z.string().nullable(),
    /** Topics a recording from this device should contain (QA profiles use them). */
    expected_topics: z.array(z.string()),
    metadata: z.record(z.string(), z.unknown()),
    created_at: Timestamp,
    updated_at: Timestamp,
  })
  .meta({ id: 'Device', description: 'A robot registered to upload recordings.' });
export type Device = z.infer<typeof Device>;

export const CreateDeviceBody = z
  .object({
    device_id: DeviceId,
    serial: z.string().trim().min(1).max(200).optional(),
    name: Name.optional(),
    robot_type: RobotType.optional(),
    expected_topics: z.array(TopicName).max(500).default([]),
    metadata: Metadata.default({}),
  })
  .strict()
  .meta({
    id: 'CreateDeviceBody',
    description: '`device_id` is unique among the organization’s live devices; a deleted one can be registered again.',
  });
export type CreateDeviceBody = z.infer<typeof CreateDeviceBody>;

export const UpdateDeviceBody = z
  .object({
    serial: z.string().trim().min(1).max(200).nullable().optional(),
    name: Name.optional(),
    robot_type: RobotType.nullable().optional(),
    expected_topics: z.array(TopicName).max(500).optional(),
    metadata: Metadata.optional(),
  })
  .strict()
  .refine((b) => Object.keys(b).length > 0, 'at least one field must be given')
  .meta({ id: 'UpdateDeviceBody', description: 'The device_id is the robot’s identity and cannot change.' });
export type UpdateDeviceBody = z.infer<typeof UpdateDeviceBody>;

const deviceFilters = {
  device_id: DeviceId.optional(),
  robot_type: RobotType.optional(),
};
export const DeviceListQuery = PageQuery.extend(deviceFilters).strict();
export const DeviceListFilter = DeviceListQuery;
export type DeviceListFilter = z.infer<typeof DeviceListFilter>;
export const DevicePage = pageOf(Device).meta({ id: 'DevicePage' });
export const DeviceIdParams = z.object({ id: Uuid }).strict();
export const DeviceTokenParams = z.object({ id: Uuid, token_id: Uuid }).strict();

/** Lifetime of a pairing token: default 10 minutes, at most a day. */
export const CreatePairingTokenBody = z
  .object({ ttl_seconds: z.number().int().min(30).max(86_400).default(600) })
  .strict()
  .meta({ id: 'CreatePairingTokenBody' });

export const PairingToken = z
  .object({
    /** Shown once; give it to the device, which exchanges it for a device token. Single use. */
    pairing_token: z.string(),
    device_id: z.string(),
    expires_at: Timestamp,
  })
  .meta({ id: 'PairingToken' });

/** A pairing token (`fpt_…`) or a device token (`fdt_…`): opaque, base64url after the prefix. */
const opaqueToken = (prefix: 'fpt' | 'fdt') =>
  z
    .string()
    .min(20)
    .max(200)
    .regex(new RegExp(`^${prefix}_[A-Za-z0-9_-]+$`), `a token starting with ${prefix}_`);
export const PairingTokenValue = opaqueToken('fpt');
export const DeviceTokenValue = opaqueToken('fdt');

export const RedeemPairingBody = z
  .object({ pairing_token: PairingTokenValue, label: z.string().trim().min(1).max(200).optional() })
  .strict()
  .meta({ id: 'RedeemPairingBody' });

export const DeviceTokenInfo = z
  .object({
    id: Uuid,
    device: Uuid,
    label: z.string().nullable(),
    created_at: Timestamp,
    last_used_at: Timestamp.nullable(),
    revoked_at: Timestamp.nullable(),
  })
  .meta({ id: 'DeviceTokenInfo', description: 'A device token, without its secret (stored only as a hash).' });

export const DeviceTokenList = z.object({ items: z.array(DeviceTokenInfo) }).meta({ id: 'DeviceTokenList' });

export const IssuedDeviceToken = z
  .object({
    /** Shown once: send it as `Authorization: Bearer fdt_…`. */
    token: z.string(),
    token_id: Uuid,
    device: Device,
  })
  .meta({ id: 'IssuedDeviceToken' });

export const deviceRpc = {
  create: defineRpc({
    subject: 'transfer.rpc.device.create',
    kind: 'command',
    request: z.object({ device: CreateDeviceBody }),
    reply: Device,
  }),
  get: defineRpc({ subject: 'transfer.rpc.device.get', kind: 'query', request: z.object({ id: Uuid }), reply: Device }),
  list: defineRpc({
    subject: 'transfer.rpc.device.list',
    kind: 'query',
    request: z.object({ query: DeviceListFilter }),
    reply: DevicePage,
  }),
  update: defineRpc({
    subject: 'transfer.rpc.device.update',
    kind: 'command',
    request: z.object({ id: Uuid, patch: UpdateDeviceBody }),
    reply: Device,
  }),
  delete: defineRpc({
    subject: 'transfer.rpc.device.delete',
    kind: 'command',
    request: z.object({ id: Uuid }),
    reply: z.object({ id: Uuid, deleted_at: Timestamp, tokens_revoked: z.number().int() }),
  }),
  createPairingToken: defineRpc({
    subject: 'transfer.rpc.device.create_pairing_token',
    kind: 'command',
    request: z.object({ id: Uuid, ttl_seconds: z.number().int().min(30).max(86_400) }),
    reply: PairingToken,
  }),
  redeemPairingToken: defineRpc({
    subject: 'transfer.rpc.device.redeem_pairing_token',
    kind: 'command',
    request: z.object({ pairing_token: PairingTokenValue, label: z.string().max(200).optional() }),
    reply: IssuedDeviceToken,
  }),
  listTokens: defineRpc({
    subject: 'transfer.rpc.device.list_tokens',
    kind: 'query',
    request: z.object({ id: Uuid }),
    reply: DeviceTokenList,
  }),
  revokeToken: defineRpc({
    subject: 'transfer.rpc.device.revoke_token',
    kind: 'command',
    request: z.object({ id: Uuid, token_id: Uuid }),
    reply: DeviceTokenInfo,
  }),
  /** The gateway's device bearer strategy: who holds this token (unauthenticated when unknown or revoked). */
  authenticate: defineRpc({
    subject: 'transfer.rpc.device.authenticate',
    kind: 'query',
    request: z.object({ token: DeviceTokenValue }),
    reply: z.object({ device: Device, token_id: Uuid }),
  }),
} as const;

export const deviceEvents = {
  registered: defineEvent({
    type: 'transfer.evt.device.registered.v1',
    schema: z.object({ device: Device }),
    description: 'A device was registered in an organization.',
  }),
  updated: defineEvent({
    type: 'transfer.evt.device.updated.v1',
    schema: z.object({ device: Device, changed: z.array(z.string()) }),
    description: 'A device’s name, serial, robot type, expected topics or metadata changed.',
  }),
  deleted: defineEvent({
    type: 'transfer.evt.device.deleted.v1',
    schema: z.object({ device: Device, deleted_at: Timestamp, tokens_revoked: z.number().int() }),
    description: 'A device was deleted; its tokens were revoked in the same transaction.',
  }),
} as const;
