import { z } from 'zod';

export const Role = z.enum(['admin', 'operator', 'viewer']);
export type Role = z.infer<typeof Role>;

/** Who is acting, as established by the gateway and carried on every RPC. */
export const Actor = z.object({
  kind: z.enum(['user', 'device', 'system']),
  /** Subject: the user id, the device id, or the system component. */
  sub: z.string().min(1).max(200),
  org: z.uuid(),
  role: Role.nullable(),
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
