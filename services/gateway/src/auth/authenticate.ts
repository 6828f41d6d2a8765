import type { Actor } from '@ferry/contracts';
import { DomainError, InvalidTokenError, verifyAccessToken } from '@ferry/platform';

/**
 * One way of turning a bearer token into an actor. Tokens are told apart by shape: JWTs (three
 * dot-separated parts) for operators and admins today; opaque prefixed tokens for devices
 * (`fdt_`, issued by transfer) and password sessions (`fst_`, stored hashed in the gateway schema)
 * plug in here as further strategies without touching routes.
 */
export interface BearerStrategy {
  readonly name: string;
  matches(token: string): boolean;
  authenticate(token: string): Promise<Actor>;
}

export function jwtStrategy(secret: string): BearerStrategy {
  return {
    name: 'jwt',
    matches: (token) => token.split('.').length === 3,
    async authenticate(token) {
      const claims = await verifyAccessToken(token, secret);
      return { kind: 'user', sub: claims.sub, org: claims.org, role: claims.role };
    },
  };
}

const BEARER = /^Bearer[ \t]+([A-Za-z0-9._~+/=-]+)[ \t]*$/i;

function unauthenticated(detail: string, invalidToken: boolean): DomainError {
  return new DomainError('unauthenticated', detail, {
    www_authenticate: invalidToken ? 'Bearer error="invalid_token"' : 'Bearer realm="ferry"',
  });
}

/**
 * The actor behind an Authorization header: the first strategy whose token shape matches decides;
 * 401 (RFC 6750 WWW-Authenticate) for no header, another scheme, an unknown shape or a token the
 * strategy refuses.
 */
export async function authenticateHeader(
  header: string | undefined,
  strategies: readonly BearerStrategy[],
): Promise<Actor> {
  if (!header) throw unauthenticated('send Authorization: Bearer <token>', false);
  const token = BEARER.exec(header)?.[1];
  if (!token) throw unauthenticated('the Authorization header must be "Bearer <token>"', true);
  const strategy = strategies.find((s) => s.matches(token));
  if (!strategy) throw unauthenticated('unrecognised token type', true);
  try {
    return await strategy.authenticate(token);
  } catch (err) {
    if (err instanceof InvalidTokenError) throw unauthenticated(err.message, true);
    throw err;
  }
}
