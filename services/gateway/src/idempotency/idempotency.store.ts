import { type Kysely, sql } from 'kysely';
import { v4 as uuidv4 } from 'uuid';
import type { GatewayDB } from '../database.js';
import { scopeHashOf } from './idempotency-key.js';

export interface IdempotencyScope {
  org: string;
  sub: string;
  method: string;
  /** The route template, so the same key on two routes means two requests. */
  route: string;
  key: string;
  fingerprint: string;
}

export type Claim =
  | { kind: 'owner'; scopeHash: string; commandId: string }
  | { kind: 'replay'; status: number; headers: Record<string, string>; body: string }
  | { kind: 'mismatch' }
  | { kind: 'in_flight'; retryAfterSeconds: number };

export interface IdempotencyStoreOptions {
  /** How long keys are kept. Default 24 h. */
  ttlHours?: number;
  /** How long a claim blocks others before a retry may take it over. Default 30 s (above the RPC timeout). */
  leaseMs?: number;
}

/**
 * Idempotency keys in the gateway schema (DESIGN §4). The claim is one atomic statement (insert,
 * or take over an expired key); a conflict is resolved from the stored row: same fingerprint and
 * completed → replay, different fingerprint → mismatch, still leased → in flight, lease lapsed
 * (gateway crashed, or the first attempt failed with 5xx) → take over with the same command id.
 */
export class IdempotencyStore {
  private readonly ttlHours: number;
  private readonly leaseMs: number;

  constructor(
    private readonly db: Kysely<GatewayDB>,
    options: IdempotencyStoreOptions = {},
  ) {
    this.ttlHours = options.ttlHours ?? 24;
    this.leaseMs = options.leaseMs ?? 30_000;
  }

  async claim(scope: IdempotencyScope): Promise<Claim> {
    const scopeHash = scopeHashOf(scope);
    const lease = sql<Date>`now() + ${`${this.leaseMs} milliseconds`}::interval`;
    const expires = sql<Date>`now() + ${`${this.ttlHours} hours`}::interval`;
    const owned = await this.db
      .insertInto('idempotency_keys')
      .values({
        scope_hash: scopeHash,
        organization_id: scope.org,
        actor_sub: scope.sub,
        method: scope.method,
        route: scope.route,
        idempotency_key: scope.key,
        fingerprint: scope.fingerprint,
        command_id: uuidv4(),
        state: 'in_progress',
        locked_until: lease,
        expires_at: expires,
      })
      .onConflict((oc) =>
        oc
          .column('scope_hash')
          .doUpdateSet((eb) => ({
            fingerprint: eb.ref('excluded.fingerprint'),
            command_id: eb.ref('excluded.command_id'),
            state: 'in_progress',
            locked_until: eb.ref('excluded.locked_until'),
            response_status: null,
            response_headers: null,
            response_body: null,
            created_at: sql<Date>`now()`,
            expires_at: eb.ref('excluded.expires_at'),
          }))
          // An expired key is a new request (the published policy).
          .where('idempotency_keys.expires_at', '<', sql<Date>`now()`),
      )
      .returning('command_id')
      .executeTakeFirst();
    if (owned) return { kind: 'owner', scopeHash, commandId: owned.command_id };

    const row = await this.db
      .selectFrom('idempotency_keys')
      .select([
        'fingerprint',
        'state',
        'command_id',
        'response_status',
        'response_headers',
        'response_body',
        sql<number>`ceil(extract(epoch from (locked_until - now())))::int`.as('lease_left'),
      ])
      .where('scope_hash', '=', scopeHash)
      .executeTakeFirst();
    if (!row) return this.claim(scope); // purged between the two statements
    if (row.fingerprint !== scope.fingerprint) return { kind: 'mismatch' };
    if (row.state === 'completed') {
      return {
        kind: 'replay',
        status: row.response_status!,
        headers: (row.response_headers ?? {}) as Record<string, string>,
        body: row.response_body ?? '',
      };
    }
    if ((row.lease_left ?? 0) > 0) return { kind: 'in_flight', retryAfterSeconds: Math.max(1, row.lease_left ?? 1) };
    // The lease lapsed: take over with the same command id, unless someone else just did.
    const taken = await this.db
      .updateTable('idempotency_keys')
      .set({ locked_until: lease })
      .where('scope_hash', '=', scopeHash)
      .where('state', '=', 'in_progress')
      .where('locked_until', '<', sql<Date>`now()`)
      .returning('command_id')
      .executeTakeFirst();
    return taken
      ? { kind: 'owner', scopeHash, commandId: taken.command_id }
      : { kind: 'in_flight', retryAfterSeconds: 1 };
  }

  /** Stores the response a retry will replay. */
  async complete(
    scopeHash: string,
    response: { status: number; headers: Record<string, string>; body: string },
  ): Promise<void> {
    await this.db
      .updateTable('idempotency_keys')
      .set({
        state: 'completed',
        locked_until: null,
        response_status: response.status,
        response_headers: JSON.stringify(response.headers),
        response_body: response.body,
      })
      .where('scope_hash', '=', scopeHash)
      .execute();
  }

  /** Ends the lease at once so a retry may proceed (with the same command id). */
  async release(scopeHash: string): Promise<void> {
    await this.db
      .updateTable('idempotency_keys')
      .set({ locked_until: sql<Date>`now() - interval '1 millisecond'` })
      .where('scope_hash', '=', scopeHash)
      .where('state', '=', 'in_progress')
      .execute();
  }

  /** Deletes expired keys (the gateway's housekeeping). */
  async purgeExpired(): Promise<number> {
    const res = await this.db
      .deleteFrom('idempotency_keys')
      .where('expires_at', '<', sql<Date>`now()`)
      .executeTakeFirst();
    return Number(res.numDeletedRows);
  }
}
