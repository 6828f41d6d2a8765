import { createHash, randomBytes } from 'node:crypto';

/**
 * Opaque bearer secrets: a prefix that says what they are (`fpt_` pairing, `fdt_` device) and 32
 * random bytes. Only their sha256 is stored, so a database leak yields no usable token.
 */
export function newOpaqueToken(prefix: 'fpt' | 'fdt'): { token: string; hash: Buffer } {
  const token = `${prefix}_${randomBytes(32).toString('base64url')}`;
  return { token, hash: hashToken(token) };
}

export function hashToken(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}
