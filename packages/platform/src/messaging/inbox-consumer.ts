import type { ConsumerDefinition, ConsumerTransaction, EventDefinition } from '@ferry/contracts';
import type { JetStreamClient, JsMsg } from '@nats-io/jetstream';
import type { Kysely, Transaction } from 'kysely';
import { z } from 'zod';
import type { MessagingTables } from '../db/messaging-tables.js';
import { inTransaction } from '../db/transaction.js';
import { isDomainError } from '../errors/domain-error.js';
import { faultPoint } from '../faults/faults.js';
import { type DependencyMonitor, isPostgresConnectionError } from '../health/dependency-monitor.js';
import { runWithTrace } from '../logging/context.js';
import type { Logger } from '../logging/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import type { Namespace } from '../namespace/namespace.js';
import { publishDeadLetter } from './dead-letters.js';
import { headersToRecord, readEventMeta } from './envelope.js';
import { PullLoop } from './pull-loop.js';
import { DEFAULT_RETRY_SCHEDULE_MS, retryDelay } from './retry-schedule.js';

/** What every event handler gets besides the payload: the delivery it is handling. */
export interface EventDelivery {
  readonly eventId: string;
  readonly eventType: string;
  readonly subject: string;
  readonly streamSeq: number;
  readonly deliveryCount: number;
  readonly correlationId?: string;
}

/** What a handler of a `transaction: 'inbox'` consumer (the default) gets. */
export interface EventContext<DB = any> extends EventDelivery {
  /** The transaction of the inbox row: write the effect and its outbox events through it. */
  readonly trx: Transaction<DB>;
}

/** What a handler of a `transaction: 'handler'` consumer gets: no transaction; it opens its own short ones. */
export interface OwnTransactionEventContext extends EventDelivery {
  readonly trx?: undefined;
}

/** The context a consumer's handler gets, by the consumer's `transaction`; for both modes, either. */
export type EventContextOf<T extends ConsumerTransaction, DB = any> = T extends 'handler'
  ? OwnTransactionEventContext
  : EventContext<DB>;

export type EventHandler<DB = any, T extends ConsumerTransaction = 'inbox'> = (
  payload: unknown,
  ctx: EventContextOf<T, DB>,
) => Promise<void>;

export interface InboxConsumerOptions<T extends ConsumerTransaction = ConsumerTransaction> {
  def: ConsumerDefinition<T>;
  /** Called with an EventContext (`inbox` consumers) or an OwnTransactionEventContext (`handler` ones). */
  handler: EventHandler<any, T>;
  db: Kysely<any>;
  js: JetStreamClient;
  ns: Namespace;
  logger: Logger;
  metrics?: Metrics;
  /** Redelivery delays by attempt. Default DEFAULT_RETRY_SCHEDULE_MS. */
  retryScheduleMs?: readonly number[];
  /** Told about Postgres outages, which are retried quietly (one warning per outage, not one per message). */
  monitor?: DependencyMonitor;
  /** Messages handled at once by this process. Default: the definition's. */
  concurrency?: number;
}

export type HandleOutcome = 'handled' | 'duplicate' | 'retry' | 'dead_lettered';

class PermanentFailure extends Error {}

/** Domain errors that say "not now" rather than "never": retried like any transient failure. */
const TRANSIENT_CODES = new Set(['conflict', 'unavailable', 'upstream_timeout', 'storage_error']);

/**
 * The inbox pattern on a durable pull consumer (DESIGN §3): for each message, one transaction inserts
 * `(consumer, event id)` into the inbox, runs the handler (which writes the effect and any outbox
 * rows through the same transaction) and commits; only then is the message acked. A conflict on the
 * inbox insert is a duplicate: ack and skip. Failures nak with a growing delay; schema-invalid
 * messages, domain errors and the last allowed attempt are dead-lettered with their reason and
 * terminated.
 */
export class InboxConsumer<T extends ConsumerTransaction = ConsumerTransaction> {
  private readonly loop: PullLoop;
  private readonly schedule: readonly number[];
  private readonly handler: EventHandler<any, ConsumerTransaction>;

  constructor(private readonly options: InboxConsumerOptions<T>) {
    // `def.transaction` is T, and handle() builds the context from it: the handler only ever gets its own.
    this.handler = options.handler as EventHandler<any, ConsumerTransaction>;
    this.schedule = options.retryScheduleMs ?? DEFAULT_RETRY_SCHEDULE_MS;
    this.loop = new PullLoop({
      js: options.js,
      stream: options.ns.stream(options.def.stream),
      durable: options.def.durable,
      concurrency: options.concurrency ?? options.def.concurrency,
      logger: options.logger,
      handle: (msg) => this.handle(msg).then(() => undefined),
    });
  }

  start(): Promise<void> {
    return this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  private decode(msg: JsMsg): { def: EventDefinition; payload: unknown; eventId: string } {
    const meta = readEventMeta(msg.headers);
    if (!meta.eventId) throw new PermanentFailure('no Ferry-Event-Id or Nats-Msg-Id header');
    const local = this.options.ns.localSubject(msg.subject) ?? msg.subject;
    const def =
      this.options.def.events.find((e) => e.type === meta.type) ??
      this.options.def.events.find((e) => local === e.type || local.startsWith(`${e.type}.`));
    if (!def) throw new PermanentFailure(`unknown event type ${meta.type ?? '(none)'} on ${msg.subject}`);
    let json: unknown;
    try {
      json = msg.json();
    } catch {
      throw new PermanentFailure('payload is not JSON');
    }
    const parsed = def.schema.safeParse(json);
    if (!parsed.success)
      throw new PermanentFailure(`payload does not match ${def.type}: ${z.prettifyError(parsed.error)}`);
    return { def, payload: parsed.data, eventId: meta.eventId };
  }

  /** Handles one delivery; exposed so tests can drive it without a pull loop. */
  async handle(msg: JsMsg): Promise<HandleOutcome> {
    const { def: consumer, logger, metrics } = this.options;
    const started = performance.now();
    const meta = readEventMeta(msg.headers);
    const log = logger.child({
      consumer: consumer.durable,
      subject: msg.subject,
      stream_seq: msg.seq,
      delivery: msg.info.deliveryCount,
      event_id: meta.eventId,
      ...(meta.correlationId ? { request_id: meta.correlationId } : {}),
    });
    const keepAlive = setInterval(() => msg.working(), Math.max(100, consumer.ackWaitMs / 3));
    let outcome: HandleOutcome;
    try {
      const { payload, eventId, def } = this.decode(msg);
      const delivery: EventDelivery = {
        eventId,
        eventType: def.type,
        subject: msg.subject,
        streamSeq: msg.seq,
        deliveryCount: msg.info.deliveryCount,
        correlationId: meta.correlationId,
      };
      outcome = await runWithTrace({ requestId: meta.correlationId, causationId: eventId }, async () => {
        if (consumer.transaction === 'handler') {
          // The handler's own short transactions and idempotent effect; no inbox row.
          await this.handler(payload, delivery);
          return 'handled' as const;
        }
        return inTransaction(this.options.db, async (trx) => {
          const inserted = await (trx as unknown as Transaction<MessagingTables>)
            .insertInto('inbox')
            .values({ consumer: consumer.durable, message_id: eventId, subject: msg.subject, stream_seq: msg.seq })
            .onConflict((oc) => oc.columns(['consumer', 'message_id']).doNothing())
            .returning('message_id')
            .executeTakeFirst();
          if (!inserted) return 'duplicate' as const;
          await this.handler(payload, { ...delivery, trx });
          return 'handled' as const;
        });
      });
      faultPoint('consumer.after_commit', consumer.durable);
      msg.ack();
      log.debug({ outcome }, 'event handled');
    } catch (err) {
      const permanent =
        err instanceof PermanentFailure ||
        (isDomainError(err) && !TRANSIENT_CODES.has(err.code)) ||
        err instanceof z.ZodError;
      const exhausted = msg.info.deliveryCount >= consumer.maxDeliver;
      if (permanent || exhausted) {
        const reason = permanent
          ? (err as Error).message
          : `failed ${msg.info.deliveryCount} deliveries (max_deliver ${consumer.maxDeliver}): ${(err as Error).message}`;
        outcome = await this.deadLetter(msg, reason).then(
          () => {
            msg.term();
            return 'dead_lettered' as const;
          },
          (dlqErr) => {
            // Could not record it: keep the message alive rather than lose it.
            log.error({ err: dlqErr }, 'could not dead-letter; will retry');
            msg.nak(retryDelay(this.schedule, msg.info.deliveryCount));
            return 'retry' as const;
          },
        );
        log.error({ err, outcome, reason }, 'event dead-lettered');
      } else {
        const delay = retryDelay(this.schedule, msg.info.deliveryCount);
        msg.nak(delay);
        outcome = 'retry';
        if (isPostgresConnectionError(err)) {
          this.options.monitor?.down('postgres', err);
          log.debug({ err: (err as Error).message, retry_in_ms: delay }, 'postgres unavailable; will retry');
        } else {
          log.warn({ err, retry_in_ms: delay }, 'event handler failed; will retry');
        }
      }
    } finally {
      clearInterval(keepAlive);
    }
    metrics?.consumerMessages.inc({ consumer: consumer.durable, outcome });
    metrics?.consumerDuration.observe({ consumer: consumer.durable }, (performance.now() - started) / 1000);
    return outcome;
  }

  private async deadLetter(msg: JsMsg, reason: string): Promise<void> {
    const { def, ns, js, metrics } = this.options;
    await publishDeadLetter(js, ns, {
      stream: def.stream,
      consumer: def.durable,
      streamSeq: msg.seq,
      subject: msg.subject,
      deliveries: msg.info.deliveryCount,
      reason,
      headers: headersToRecord(msg.headers),
      data: msg.data,
    });
    metrics?.deadLettered.inc({ consumer: def.durable });
  }
}
