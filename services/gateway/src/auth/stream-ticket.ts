import { createHmac, timingSafeEqual } from 'node:crypto';
import { type Actor, Role } from '@ferry/contracts';
import { DomainError } from '@ferry/platform';
import { z } from 'zod';

/** `fet_<claims>.<mac>`, both base64url: told apart from every bearer token shape (JWT, `fdt_`, `fst_`). */
export const STREAM_TICKET = /^fet_[A-Za-z0-9_-]{1,1500}\.[A-Za-z0-9_-]{43}$/;

const Claims = z
  .object({
    /** What the ticket opens, e.g. `bulk_run:<id>`: one resource, never another. */
    scope: z.string().min(1).max(200),
    org: z.uuid(),
    sub: z.string().min(1).max(200),
    role: Role,
    /** Expiry, seconds since the epoch. */
    exp: z.number().int(),
  })
  .strict();

export interface StreamTicketsOptions {
  /** FERRY_JWT_SECRET: the ticket key is derived from it with a label, so nothing new is configured. */
  secret: string;
  /** How long a ticket is valid. Default 300 s: enough to open (and re-open) one stream, short if it leaks. */
  ttlSeconds?: number;
  now?: () => number;
}

function unauthenticated(detail: string): DomainError {
  return new DomainError('unauthenticated', detail, { www_authenticate: 'Bearer realm="ferry"' });
}

/**
 * Short-lived, resource-scoped credentials for clients that cannot send an Authorization header
 * (a browser's EventSource). HMAC-SHA256 over the claims with a key derived from the JWT secret under
 * its own label, so a ticket is never a bearer token and a bearer token is never a ticket; the bearer
 * token itself never goes into a URL.
 */
export class StreamTickets {
  private readonly key: Buffer;
  readonly ttlSeconds: number;
  private readonly now: () => number;

  constructor(options: StreamTicketsOptions) {
    this.key = createHmac('sha256', options.secret).update('ferry stream ticket v1').digest();
    this.ttlSeconds = options.ttlSeconds ?? 300;
    this.now = options.now ?? Date.now;
  }

  issue(actor: Actor, scope: string): { ticket: string; expiresAt: Date } {
    if (actor.kind !== 'user' || !actor.role) throw new DomainError('forbidden', 'only users get stream tickets');
    const exp = Math.floor(this.now() / 1000) + this.ttlSeconds;
    const claims = Buffer.from(
      JSON.stringify({ scope, org: actor.org, sub: actor.sub, role: actor.role, exp }),
    ).toString('base64url');
    return { ticket: `fet_${claims}.${this.mac(claims)}`, expiresAt: new Date(exp * 1000) };
  }

  /** The actor a ticket stands for: 401 when it is not a valid, unexpired ticket; 403 when it opens another resource. */
  verify(ticket: string, scope: string): Actor {
    if (!STREAM_TICKET.test(ticket)) throw unauthenticated('the ticket is not a stream ticket');
    const [claims = '', mac = ''] = ticket.slice(4).split('.');
    const expected = Buffer.from(this.mac(claims), 'base64url');
    const given = Buffer.from(mac, 'base64url');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw unauthenticated('the ticket is not valid');
    }
    let parsed: z.infer<typeof Claims>;
    try {
      parsed = Claims.parse(JSON.parse(Buffer.from(claims, 'base64url').toString('utf8')));
    } catch {
      throw unauthenticated('the ticket is not valid');
    }
    if (parsed.exp * 1000 <= this.now()) throw unauthenticated('the ticket has expired; ask for a new one');
    if (parsed.scope !== scope) throw new DomainError('forbidden', 'the ticket is for another resource');
    return { kind: 'user', sub: parsed.sub, org: parsed.org, role: parsed.role };
  }

  private mac(claims: string): string {
    return createHmac('sha256', this.key).update(`fet_${claims}`).digest('base64url');
  }
}
