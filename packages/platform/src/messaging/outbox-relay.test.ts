import { HEADERS } from '@ferry/contracts';
import { jetstream } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { Database } from '../db/database.js';
import { runWithTrace } from '../logging/context.js';
import {
  fixturePath,
  probeEvent,
  silentLogger,
  startChild,
  streamMessages,
  TestInfra,
  waitFor,
} from '../testing/index.js';
import { Outbox } from './outbox.js';
import { OutboxRelay, type RelayBatchResult } from './outbox-relay.js';

describe('OutboxRelay', () => {
  let infra: TestInfra;
  let database: Database<any>;
  let outbox: Outbox;
  const stream = () => infra.ns.stream('PRODUCTION');

  beforeAll(async () => {
    infra = await TestInfra.create({ services: [{ name: 'relay' }] });
    database = infra.database('relay');
    outbox = new Outbox(infra.ns);
  });
  afterAll(() => infra.cleanup());

  async function appendProbes(count: number, from = 0): Promise<string[]> {
    return database.db.transaction().execute(async (trx) => {
      const ids: string[] = [];
      for (let i = 0; i < count; i++)
        ids.push(await outbox.append(trx, probeEvent, { n: from + i, fail: 'never' }, { aggregateId: 'p' }));
      return ids;
    });
  }

  async function unpublished(): Promise<number> {
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from outbox where published_at is null`.execute(
      database.db,
    );
    return rows[0]!.n;
  }

  async function purge() {
    await infra.jsm.streams.purge(stream());
    await sql`delete from outbox`.execute(database.db);
  }

  function relay(options: Partial<ConstructorParameters<typeof OutboxRelay>[0]> = {}) {
    return new OutboxRelay({
      db: database.db,
      databaseUrl: infra.databaseUrl,
      schema: infra.schema('relay'),
      js: infra.js,
      logger: silentLogger(),
      ...options,
    });
  }

  it('publishes each row once with Nats-Msg-Id = event id, the envelope headers, and marks it', async () => {
    await purge();
    const [id] = await runWithTrace({ requestId: 'req-123' }, () => appendProbes(1));
    const result = await relay().relayBatch();
    expect(result).toEqual({ claimed: 1, published: 1, duplicates: 0, failed: 0 });
    const [msg] = await streamMessages(infra.jsm, stream());
    expect(msg!.subject).toBe(infra.ns.subject('production.evt.probe.fired.v1'));
    expect(msg!.header.get(HEADERS.msgId)).toBe(id);
    expect(msg!.header.get(HEADERS.eventId)).toBe(id);
    expect(msg!.header.get(HEADERS.eventType)).toBe('production.evt.probe.fired.v1');
    expect(msg!.header.get(HEADERS.schemaVersion)).toBe('1');
    expect(msg!.header.get(HEADERS.correlationId)).toBe('req-123');
    expect(msg!.json()).toEqual({ n: 0, fail: 'never' });
    expect(await unpublished()).toBe(0);
    expect(await relay().relayBatch()).toEqual({ claimed: 0, published: 0, duplicates: 0, failed: 0 });
  });

  it('refuses to write an event that does not match its contract', async () => {
    await purge();
    const err = await database.db
      .transaction()
      .execute((trx) => outbox.append(trx, probeEvent, { n: 'x' } as never, { aggregateId: 'p' }))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(z.ZodError);
    expect((err as z.ZodError).issues.map((i) => i.path)).toEqual([['n']]);
    expect(await unpublished()).toBe(0);
  });

  it('publishes exactly once when the relay is killed between publish and mark', async () => {
    await purge();
    const ids = await appendProbes(5);
    const child = startChild(fixturePath('relay-worker'), {
      ...infra.env(),
      RELAY_SCHEMA: infra.schema('relay'),
      FERRY_FAULTS: 'relay.after_publish',
    });
    try {
      const exit = await child.waitForExit();
      expect(exit.signal).toBe('SIGKILL');
    } finally {
      await child.stop(); // a relay whose fault never fired must not outlive the test
    }
    // It published all five, then died holding the transaction: nothing is marked.
    expect((await streamMessages(infra.jsm, stream())).length).toBe(5);
    expect(await unpublished()).toBe(5);

    const result = await relay().relayBatch();
    expect(result).toEqual({ claimed: 5, published: 5, duplicates: 5, failed: 0 });
    const msgs = await streamMessages(infra.jsm, stream());
    expect(msgs.map((m) => m.header.get(HEADERS.msgId)).sort()).toEqual([...ids].sort());
    expect(await unpublished()).toBe(0);
  });

  it('publishes every row exactly once when three relays race', async () => {
    await purge();
    const ids = await appendProbes(600);
    const relays = await Promise.all(
      [0, 1, 2].map(async () => {
        const db = infra.database('relay', { max: 2 });
        const nc = await connect({ servers: infra.natsUrl });
        return { relay: relay({ db: db.db, js: jetstream(nc), batchSize: 50, pollIntervalMs: 20 }), nc };
      }),
    );
    const results = await Promise.all(
      relays.map(async ({ relay: r }) => {
        let published = 0;
        let duplicates = 0;
        for (;;) {
          const res = await r.relayBatch();
          published += res.published;
          duplicates += res.duplicates;
          if (res.claimed === 0) return { published, duplicates };
        }
      }),
    );
    await Promise.all(relays.map(({ nc }) => nc.close()));
    expect(results.reduce((a, r) => a + r.published, 0)).toBe(600);
    expect(results.reduce((a, r) => a + r.duplicates, 0)).toBe(0);
    expect(results.filter((r) => r.published > 0).length).toBeGreaterThan(1);
    const msgs = await streamMessages(infra.jsm, stream());
    const seen = msgs.map((m) => m.header.get(HEADERS.msgId));
    expect(seen.length).toBe(600);
    expect(new Set(seen)).toEqual(new Set(ids));
    expect(await unpublished()).toBe(0);
  });

  it('is woken by NOTIFY at commit instead of waiting for its poll', async () => {
    await purge();
    // A poll far beyond the test's timeout: any pass after the first one was woken by a NOTIFY.
    const r = relay({ pollIntervalMs: 600_000 });
    const passes: RelayBatchResult[] = [];
    const relayBatch = r.relayBatch.bind(r);
    r.relayBatch = async () => {
      const result = await relayBatch();
      passes.push(result);
      return result;
    };
    await r.start();
    try {
      await waitFor(() => passes.length === 1, { what: 'the first pass' });
      expect(passes).toEqual([{ claimed: 0, published: 0, duplicates: 0, failed: 0 }]); // idle now
      const [id] = await appendProbes(1);
      await waitFor(async () => (await unpublished()) === 0, { timeoutMs: 5_000, what: 'NOTIFY-driven publish' });
      expect(passes).toEqual([
        { claimed: 0, published: 0, duplicates: 0, failed: 0 },
        { claimed: 1, published: 1, duplicates: 0, failed: 0 },
      ]);
      const msgs = await streamMessages(infra.jsm, stream());
      expect(msgs.map((m) => m.header.get(HEADERS.msgId))).toEqual([id]);
    } finally {
      await r.stop();
    }
  });

  it('publishes a row committed while a pass is running without waiting for its poll', async () => {
    await purge();
    const r = relay({ pollIntervalMs: 600_000 });
    let late: string | undefined;
    const relayBatch = r.relayBatch.bind(r);
    r.relayBatch = async () => {
      const result = await relayBatch();
      if (result.claimed > 0 && !late) {
        // Another transaction commits while this pass is still running; its NOTIFY arrives meanwhile.
        [late] = await appendProbes(1, 1);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      return result;
    };
    await r.start();
    try {
      await appendProbes(1);
      await waitFor(() => late !== undefined, { what: 'the commit during a pass' });
      await waitFor(async () => (await unpublished()) === 0, { timeoutMs: 5_000, what: 'the late row published' });
      const msgs = await streamMessages(infra.jsm, stream());
      expect(msgs.map((m) => m.header.get(HEADERS.msgId))).toContain(late);
    } finally {
      await r.stop();
    }
  });

  it('keeps a row it cannot publish, with the error and a later retry time', async () => {
    await purge();
    await sql`insert into outbox (id, subject, event_type, payload) values
      ('01900000-0000-7000-8000-000000000001', 'nowhere.evt.x.y.v1', 'nowhere.evt.x.y.v1', '{}')`.execute(database.db);
    const result = await relay({ publishTimeoutMs: 500 }).relayBatch();
    expect(result.failed).toBe(1);
    const { rows } = await sql<{ attempts: number; last_error: string; later: boolean; published_at: Date | null }>`
      select attempts, last_error, next_attempt_at > now() as later, published_at from outbox`.execute(database.db);
    expect(rows[0]).toMatchObject({ attempts: 1, later: true, published_at: null });
    expect(rows[0]!.last_error).toBeTruthy();
    // Not due yet: the next pass leaves it alone.
    expect((await relay().relayBatch()).claimed).toBe(0);
  });
});
