import { readFileSync } from 'node:fs';
import { Role } from '@ferry/contracts';
import { mintAccessToken } from '@ferry/platform';
import { z } from 'zod';

const DURATION = /^(\d+)([smhd])$/;

export function parseDuration(text: string): number {
  const m = DURATION.exec(text);
  if (!m) throw new Error(`--ttl must look like 30m, 12h or 7d (got ${text})`);
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[m[2] as 's' | 'm' | 'h' | 'd'];
}

export async function token(options: { org?: string; role?: string; sub?: string; ttl?: string; secretFile?: string }) {
  const secret = options.secretFile ? readFileSync(options.secretFile, 'utf8').trim() : process.env.FERRY_JWT_SECRET;
  if (!secret) throw new Error('set FERRY_JWT_SECRET (or pass --secret-file) to sign tokens');
  const org = z.uuid().safeParse(options.org);
  if (!org.success) throw new Error('--org must be the organization id (a UUID)');
  const role = Role.safeParse(options.role ?? 'operator');
  if (!role.success) throw new Error('--role must be admin, operator or viewer');
  return mintAccessToken({
    secret,
    org: org.data,
    role: role.data,
    sub: options.sub ?? `${role.data}-cli`,
    ttlSeconds: parseDuration(options.ttl ?? '12h'),
  });
}
