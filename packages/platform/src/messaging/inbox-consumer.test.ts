import { defineConsumer, HEADERS } from '@ferry/contracts';
import { AckPolicy } from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import { sql } from 'kysely';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, expectTypeOf, it } from 'vitest';
import type { Database } from '../db/database.js';
import { DomainError } from '../errors/domain-error.js';
import type { Logger } from '../logging/logger.js';
import {
  captureLogger,
  fixturePath,
  probeConsumer,
  probeEvent,
  silentLogger,
  startChild,
  TestInfra,
  waitFor,
} from '../testing/index.js';
import { DeadLetterQueue } from './dead-letters.js';
import { DlqForwarder } from './dlq-forwarder.js';
import { toNatsHeaders } from './envelope.js';
import {
  type EventHandler,
  type HandleOutcome,
  InboxConsumer,
  type OwnTransactionEventContext,
} from './inbox-consumer.js';
import { consumerConfig } from './topology.js';

describe('InboxConsumer', () => {
  let infra: TestInfra;
  let database: Database<any>;
  let dlq: DeadLetterQueue;
  const running: { stop(): Promise<void> }[] = [];
  let seq = 0;

  beforeAll(async () => {
    infra = await TestInfra.create({ services: [{ name: 'cons' }] });
    database = infra.database('cons');
    await sql`create table effects (id serial primary key, event_id text not null, n int not null)`.execute(
      database.db,
    );
    dlq = new DeadLetterQueue(infra.jsm, infra.js, infra.ns);
  });
  afterAll(() => infra.cleanup());
  beforeEach(async () => {
    await infra.jsm.streams.purge(infra.ns.stream('PRODUCTION'));
    await infra.jsm.streams.purge(infra.ns.stream('DLQ'));
    await sql`truncate effects`.execute(database.db);
  });
  afterEach(async () => {
    await Promise.all(running.splice(0).map((r) => r.stop()));
  });

  async function newConsumer(maxDeliver = 3, ackWaitMs = 1_000) {
    const def = probeConsumer({ durable: `production__probe${++seq}`, maxDeliver, ackWaitMs });
    await infra.jsm.consumers.add(infra.ns.stream('PRODUCTION'), consumerConfig(infra.ns, def));
    return def;
  }

  const recordEffect: EventHandler = async (payload, ctx) => {
    const { n, fail } = payload as { n: number; fail: string };
    if (fail === 'always') throw new Error(`probe ${n} always fails`);
    await sql`insert into effects (event_id, n) values (${ctx.eventId}, ${n})`.execute(ctx.trx);
  };

  function start(
    def: ReturnType<typeof probeConsumer>,
    handler: EventHandler = recordEffect,
    options: { outcomes?: HandleOutcome[]; retryScheduleMs?: number[]; logger?: Logger } = {},
  ) {
    const c = new InboxConsumer({
      def,
      handler,
      db: database.db,
      js: infra.js,
      ns: infra.ns,
      logger: options.logger ?? silentLogger(),
      retryScheduleMs: options.retryScheduleMs ?? [100, 200],
    });
    if (options.outcomes) {
      // Record what each delivery came to (the pull loop calls handle() through the instance).
      const handle = c.handle.bind(c);
      c.handle = async (msg) => {
        const outcome = await handle(msg);
        options.outcomes!.push(outcome);
        return outcome;
      };
    }
    running.push(c);
    return c.start().then(() => c);
  }

  /** Publishes like the relay does; `msgId` differs from the event id only for replays. */
  async function publish(payload: unknown, eventId = uuidv7(), msgId = eventId) {
    await infra.js.publish(infra.ns.subject(probeEvent.type), JSON.stringify(payload), {
      msgID: msgId,
      headers: toNatsHeaders({
        [HEADERS.eventId]: eventId,
        [HEADERS.eventType]: probeEvent.type,
        [HEADERS.schemaVersion]: '1',
      }),
    });
    return eventId;
  }

  async function effects(): Promise<{ event_id: string; n: number }[]> {
    return (
      await sql<{ event_id: string; n: number }>`select event_id, n from effects order by id`.execute(database.db)
    ).rows;
  }

  async function settled(durable: string) {
    await waitFor(
      async () => {
        const info = await infra.jsm.consumers.info(infra.ns.stream('PRODUCTION'), durable);
        return info.num_pending === 0 && info.num_ack_pending === 0;
      },
      { timeoutMs: 15_000, what: `${durable} to ack everything` },
    );
  }

  it('applies the effect once and skips a redelivered event as a duplicate', async () => {
    const def = await newConsumer();
    await start(def);
    const id = await publish({ n: 1 });
    await publish({ n: 1 }, id, `replay-${id}`); // same event again under a new Nats-Msg-Id
    await settled(def.durable);
    expect(await effects()).toEqual([{ event_id: id, n: 1 }]);
  });

  it('applies the effect once when the same event is delivered twice at the same moment', async () => {
    const def = await newConsumer();
    const outcomes: HandleOutcome[] = [];
    let entered = 0;
    let overlapped = false;
    await start(
      def,
      async (payload, ctx) => {
        entered++;
        await recordEffect(payload, ctx);
        // Hold the inbox row until the twin's inbox insert is waiting on it: the overlap under test.
        const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(ctx.trx);
        overlapped = await waitFor(
          async () => {
            const blocked = await sql<{ n: number }>`
              select count(*)::int as n from pg_stat_activity
              where ${rows[0]!.pid}::int = any(pg_blocking_pids(pid))`.execute(database.db);
            return blocked.rows[0]!.n > 0;
          },
          { timeoutMs: 10_000, what: 'the twin delivery to wait on the inbox row' },
        ).then(
          () => true,
          () => false,
        );
      },
      { outcomes },
    );
    const id = uuidv7();
    await Promise.all([publish({ n: 2 }, id), publish({ n: 2 }, id, `twin-${id}`)]);
    await settled(def.durable);
    expect(overlapped).toBe(true); // both deliveries were in flight at once
    expect(entered).toBe(1);
    expect(outcomes.sort()).toEqual(['duplicate', 'handled']);
    expect(await effects()).toEqual([{ event_id: id, n: 2 }]);
  });

  it('applies the effect once when the process dies after commit and before ack', async () => {
    const def = await newConsumer(5, 1_000);
    const child = startChild(fixturePath('consumer-worker'), {
      ...infra.env(),
      CONSUMER_SCHEMA: infra.schema('cons'),
      CONSUMER_DURABLE: def.durable,
      ACK_WAIT_MS: '1000',
      FERRY_FAULTS: `consumer.after_commit@${def.durable}`, // the scope is the consumer's durable
    });
    const id = uuidv7();
    try {
      await child.waitForOutput(/ready/);
      await publish({ n: 3 }, id);
      expect((await child.waitForExit()).signal).toBe('SIGKILL');
    } finally {
      await child.stop(); // a consumer whose fault never fired must not outlive the test
    }
    expect(await effects()).toEqual([{ event_id: id, n: 3 }]); // committed, never acked

    const outcomes: HandleOutcome[] = [];
    await start(def, recordEffect, { outcomes }); // a healthy replica gets the redelivery after ack_wait
    await settled(def.durable);
    expect(outcomes).toEqual(['duplicate']); // the inbox row committed before the kill
    expect(await effects()).toEqual([{ event_id: id, n: 3 }]);
  });

  it('runs a `transaction: handler` consumer outside any transaction: no inbox row, acked after the handler, retried after a throw', async () => {
    const def = defineConsumer({
      durable: `production__probe${++seq}`,
      service: 'production',
      events: [probeEvent],
      ackWaitMs: 1_000,
      maxDeliver: 3,
      transaction: 'handler',
    });
    await infra.jsm.consumers.add(infra.ns.stream('PRODUCTION'), consumerConfig(infra.ns, def));
    const ackPending = async () =>
      (await infra.jsm.consumers.info(infra.ns.stream('PRODUCTION'), def.durable)).num_ack_pending;
    let release!: () => void;
    const held = new Promise<void>((r) => {
      release = r;
    });
    const seen: { n: number; delivery: number; trx: unknown }[] = [];
    const handler: EventHandler<any, 'handler'> = async (payload, ctx) => {
      // The type says it too: there is no transaction to write through.
      expectTypeOf(ctx).toEqualTypeOf<OwnTransactionEventContext>();
      expectTypeOf(ctx.trx).toEqualTypeOf<undefined>();
      const { n } = payload as { n: number };
      seen.push({ n, delivery: ctx.deliveryCount, trx: ctx.trx });
      if (n === 1) await held;
      if (n === 2 && ctx.deliveryCount === 1) throw new Error('probe 2 fails once');
      await sql`insert into effects (event_id, n) values (${ctx.eventId}, ${n})`.execute(database.db);
    };
    const c = new InboxConsumer({
      def,
      handler,
      db: database.db,
      js: infra.js,
      ns: infra.ns,
      logger: silentLogger(),
      retryScheduleMs: [100],
    });
    running.push(c);
    await c.start();

    const first = await publish({ n: 1 });
    await waitFor(() => seen.length === 1, { what: 'the held handler to run' });
    // Held past ack_wait: the message stays unacknowledged (kept alive, not redelivered) while the handler runs.
    await new Promise((r) => setTimeout(r, 1_200));
    expect(await ackPending()).toBe(1);
    expect(seen).toHaveLength(1);
    release();
    await settled(def.durable);

    const second = await publish({ n: 2 });
    await settled(def.durable);
    expect(seen).toEqual([
      { n: 1, delivery: 1, trx: undefined },
      { n: 2, delivery: 1, trx: undefined },
      { n: 2, delivery: 2, trx: undefined },
    ]);
    expect(await effects()).toEqual([
      { event_id: first, n: 1 },
      { event_id: second, n: 2 },
    ]);
    const inbox = await sql<{
      n: number;
    }>`select count(*)::int as n from inbox where consumer = ${def.durable}`.execute(database.db);
    expect(inbox.rows[0]!.n).toBe(0);
  });

  it('dead-letters a schema-invalid message at once with the reason and terminates it', async () => {
    const def = await newConsumer(5);
    await start(def);
    await publish({ n: 'not a number' });
    await settled(def.durable);
    const [entry] = await dlq.list();
    expect(entry).toMatchObject({ stream: 'PRODUCTION', consumer: def.durable, deliveries: 1 });
    expect(entry!.reason).toMatch(/does not match production.evt.probe.fired.v1/);
    expect(JSON.parse(entry!.data)).toEqual({ n: 'not a number' });
    expect(await effects()).toEqual([]);
  });

  it('dead-letters a domain error without retrying it', async () => {
    const def = await newConsumer(5);
    await start(def, async () => {
      throw new DomainError('invalid_state', 'task 42 is cancelled');
    });
    await publish({ n: 4 });
    await settled(def.durable);
    const [entry] = await dlq.list();
    expect(entry).toMatchObject({ deliveries: 1, reason: 'task 42 is cancelled' });
  });

  it('retries a transient domain error (conflict) instead of dead-lettering it', async () => {
    const def = await newConsumer(5);
    let attempts = 0;
    await start(def, async (payload, ctx) => {
      if (++attempts === 1) throw new DomainError('conflict', 'changed concurrently; retry');
      await recordEffect(payload, ctx);
    });
    const id = await publish({ n: 8 });
    await waitFor(async () => (await effects()).length === 1, { what: 'the retried effect' });
    await settled(def.durable);
    expect(attempts).toBe(2);
    expect(await effects()).toEqual([{ event_id: id, n: 8 }]);
    expect(await dlq.list()).toEqual([]);
  });

  it('retries a failing message on a schedule, then dead-letters it after max_deliver with its origin and reason', async () => {
    // ack_wait far above the schedule, and above the DLQ wait below: a consumer that never naks waits it out
    // and never gets its three deliveries in time.
    const ackWaitMs = 10_000;
    const def = await newConsumer(3, ackWaitMs);
    const schedule = [200, 2_000];
    const attemptsAt: number[] = [];
    const { logger, lines } = captureLogger();
    await start(
      def,
      async (payload, ctx) => {
        attemptsAt.push(performance.now());
        await recordEffect(payload, ctx);
      },
      { retryScheduleMs: schedule, logger },
    );
    const id = await publish({ n: 5, fail: 'always' });
    await waitFor(async () => (await dlq.list()).length === 1, { timeoutMs: 10_000, what: 'DLQ entry' });
    await settled(def.durable);
    expect(attemptsAt).toHaveLength(3);
    // The delay each nak asked for (the consumer logs the value it passes to nak) follows the schedule,
    // within its ±20 % jitter: a flat schedule fails here.
    const naks = lines()
      .filter((l) => l.consumer === def.durable && l.msg === 'event handler failed; will retry')
      .map((l) => ({ delivery: l.delivery, delay: l.retry_in_ms as number }));
    expect(naks.map((n) => n.delivery)).toEqual([1, 2]);
    for (const [i, { delay }] of naks.entries()) {
      expect(delay).toBeGreaterThanOrEqual(schedule[i]! * 0.8);
      expect(delay).toBeLessThanOrEqual(schedule[i]! * 1.2);
    }
    // And the server honoured it: each redelivery came no sooner than asked (the delay starts when the nak
    // reaches the server, after the attempt began). A bare nak, whatever was logged, comes back at once.
    const gaps = [attemptsAt[1]! - attemptsAt[0]!, attemptsAt[2]! - attemptsAt[1]!];
    for (const [i, gap] of gaps.entries()) expect(gap).toBeGreaterThanOrEqual(naks[i]!.delay);
    const [entry] = await dlq.list();
    expect(entry).toMatchObject({
      stream: 'PRODUCTION',
      consumer: def.durable,
      subject: infra.ns.subject(probeEvent.type),
      deliveries: 3,
      eventId: id,
      eventType: probeEvent.type,
    });
    expect(entry!.streamSeq).toBeGreaterThan(0);
    expect(entry!.reason).toMatch(/failed 3 deliveries \(max_deliver 3\): probe 5 always fails/);
    expect(await effects()).toEqual([]);
  });

  it('replays a dead letter to its consumer, which now handles it, and removes it from the DLQ', async () => {
    const def = await newConsumer(2);
    let healthy = false;
    await start(def, async (payload, ctx) => {
      if (!healthy) throw new Error('dependency down');
      await recordEffect({ ...(payload as object), fail: 'never' }, ctx);
    });
    const id = await publish({ n: 6 });
    await waitFor(async () => (await dlq.list()).length === 1, { what: 'DLQ entry' });
    healthy = true;
    const [entry] = await dlq.list();
    const { replayed } = await dlq.replay(entry!.seq);
    expect(replayed.eventId).toBe(id);
    await waitFor(async () => (await effects()).length === 1, { what: 'replayed effect' });
    expect(await effects()).toEqual([{ event_id: id, n: 6 }]);
    expect(await dlq.list()).toEqual([]);
  });

  it('forwards the server advisory to the DLQ when no consumer recorded the death itself', async () => {
    // A consumer that never acks (think: a process that crashes on every delivery).
    const durable = `production__silent${++seq}`;
    await infra.jsm.consumers.add(infra.ns.stream('PRODUCTION'), {
      durable_name: durable,
      ack_policy: AckPolicy.Explicit,
      filter_subject: infra.ns.subject(probeEvent.type),
      ack_wait: nanos(300),
      max_deliver: 2,
    });
    const forwarder = new DlqForwarder({ js: infra.js, jsm: infra.jsm, ns: infra.ns, logger: silentLogger() });
    await forwarder.start();
    running.push(forwarder);
    const id = await publish({ n: 7 });
    const consumer = await infra.js.consumers.get(infra.ns.stream('PRODUCTION'), durable);
    for (let i = 0; i < 2; i++) expect(await consumer.next({ expires: 2_000 })).not.toBeNull(); // never acked
    // The server notices the exhausted message when a pull asks for more, as a live replica's would.
    expect(await consumer.next({ expires: 1_000 })).toBeNull();
    const entry = await waitFor(async () => (await dlq.list({ consumer: durable }))[0], {
      timeoutMs: 10_000,
      what: 'forwarded DLQ entry',
    });
    expect(entry).toMatchObject({
      consumer: durable,
      deliveries: 2,
      eventId: id,
      reason: 'max deliveries (2) exhausted',
    });
    expect(JSON.parse(entry.data)).toEqual({ n: 7 });
  });
});
