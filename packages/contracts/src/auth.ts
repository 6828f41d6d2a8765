import { z } from 'zod';

export const Role = z.enum(['admin', 'operator', 'viewer']);
export type Role = z.infer<typeof Role>;

/**
 * A device actor's credential: the device record its token was issued to and the token itself (transfer's
 * ids). `Actor.sub` is the device's `device_id`, a name a deleted device's successor may take again; what a
 * device owns is checked against this record, so an old token never acts as the new device.
 */
export const DeviceCredential = z.object({ id: z.uuid(), token_id: z.uuid() });
export type DeviceCredential = z.infer<typeof DeviceCredential>;

/** Who is acting, as established by the gateway and carried on every RPC. */
export const Actor = z.object({
  kind: z.enum(['user', 'device', 'system']),
  /** Subject: the user id, the device id, or the system component. */
  sub: z.string().min(1).max(200),
  org: z.uuid(),
  role: Role.nullable(),
  /** Devices only: the record and token behind the device token (absent: the callee refuses device work). */
  device: DeviceCredential.optional(),
});
export type Actor = z.infer<typeof Actor>;

/** Claims of an operator/admin bearer JWT (HS256, signed with FERRY_JWT_SECRET). */
export const AccessTokenClaims = z.object({
  sub: z.string().min(1).max(200),
  org: z.uuid(),
  role: Role,
  exp: z.number().int(),
  iat: z.number().int().optional(),
});
export type AccessTokenClaims = z.infer<typeof AccessTokenClaims>;
