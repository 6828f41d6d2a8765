import { AccessTokenClaims, type Role } from '@ferry/contracts';
import { errors as joseErrors, jwtVerify, SignJWT } from 'jose';

const ISSUER = 'ferry';
const AUDIENCE = 'ferry-api';

export interface MintOptions {
  secret: string;
  sub: string;
  org: string;
  role: Role;
  /** Lifetime in seconds. Default 12 h. */
  ttlSeconds?: number;
}

/** Signs an operator/admin bearer token (HS256). Used by `ferry token` and the demo launcher. */
export async function mintAccessToken(options: MintOptions): Promise<string> {
  AccessTokenClaims.omit({ exp: true, iat: true }).parse({ sub: options.sub, org: options.org, role: options.role });
  return new SignJWT({ org: options.org, role: options.role })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(options.sub)
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + (options.ttlSeconds ?? 12 * 3600))
    .sign(new TextEncoder().encode(options.secret));
}

export class InvalidTokenError extends Error {
  override readonly name = 'InvalidTokenError';
}

/** Verifies signature, issuer, audience and expiry, then the claims' shape. */
export async function verifyAccessToken(token: string, secret: string): Promise<AccessTokenClaims> {
  try {
    const { payload } = await jwtVerify(token, new TextEncoder().encode(secret), {
      issuer: ISSUER,
      audience: AUDIENCE,
      algorithms: ['HS256'],
      requiredClaims: ['exp', 'sub'],
    });
    const claims = AccessTokenClaims.safeParse(payload);
    if (!claims.success) throw new InvalidTokenError('token claims are malformed');
    return claims.data;
  } catch (err) {
    if (err instanceof InvalidTokenError) throw err;
    if (err instanceof joseErrors.JWTExpired) throw new InvalidTokenError('token expired', { cause: err });
    throw new InvalidTokenError('token is not valid', { cause: err });
  }
}
