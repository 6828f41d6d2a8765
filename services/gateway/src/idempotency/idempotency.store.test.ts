import { TestInfra } from '@ferry/platform/testing';
import { type Kysely, sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GatewayDB } from '../database.js';
import { GATEWAY_MIGRATIONS } from '../migrations.js';
import { IdempotencyStore } from './idempotency.store.js';

describe('IdempotencyStore', () => {
  let infra: TestInfra;
  let store: IdempotencyStore;
  let db: Kysely<GatewayDB>;
  beforeAll(async () => {
    infra = await TestInfra.create({
      services: [{ name: 'gateway', migrations: GATEWAY_MIGRATIONS }],
      provision: false,
    });
    db = infra.database<GatewayDB>('gateway').db;
    store = new IdempotencyStore(db, { leaseMs: 60_000 });
  });
  afterAll(() => infra.cleanup());

  const scope = (key: string, fingerprint = 'f1') => ({
    org: '01900000-0000-7000-8000-0000000000aa',
    sub: 'alice',
    method: 'POST',
    route: '/orders',
    key,
    fingerprint,
  });

  it('treats a key past its 24 hours as a new request, with a new command id', async () => {
    const first = await store.claim(scope('old'));
    if (first.kind !== 'owner') throw new Error('expected to own the key');
    await store.complete(first.scopeHash, { status: 201, headers: {}, body: '{}' });
    expect((await store.claim(scope('old'))).kind).toBe('replay');
    await sql`update idempotency_keys set expires_at = now() - interval '1 second' where idempotency_key = 'old'`.execute(
      db,
    );
    const again = await store.claim(scope('old', 'another body'));
    expect(again.kind).toBe('owner');
    expect(again.kind === 'owner' && again.commandId).not.toBe(first.commandId);
  });

  it('lets a request take over a lapsed lease with the same command id, and only one of two racing', async () => {
    const first = await store.claim(scope('lapsed'));
    if (first.kind !== 'owner') throw new Error('expected to own the key');
    await sql`update idempotency_keys set locked_until = now() - interval '1 second' where idempotency_key = 'lapsed'`.execute(
      db,
    );
    const [a, b] = await Promise.all([store.claim(scope('lapsed')), store.claim(scope('lapsed'))]);
    const owners = [a, b].filter((c) => c.kind === 'owner');
    expect(owners).toHaveLength(1);
    expect(owners[0]!.kind === 'owner' && owners[0]!.commandId).toBe(first.commandId);
    expect([a, b].map((c) => c.kind)).toContain('in_flight');
  });

  it('purges expired keys only', async () => {
    await store.claim(scope('purge-me'));
    await store.claim(scope('keep-me'));
    await sql`update idempotency_keys set expires_at = now() - interval '1 second' where idempotency_key = 'purge-me'`.execute(
      db,
    );
    expect(await store.purgeExpired()).toBeGreaterThanOrEqual(1);
    const { rows } = await sql<{
      k: string;
    }>`select idempotency_key as k from idempotency_keys where idempotency_key in ('purge-me', 'keep-me')`.execute(db);
    expect(rows).toEqual([{ k: 'keep-me' }]);
  });
});
