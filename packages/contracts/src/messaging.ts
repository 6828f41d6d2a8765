import { z } from 'zod';
import { Actor } from './auth.js';
import { isErrorCode } from './errors.js';

export type ServiceName = 'production' | 'transfer' | 'qa' | 'gateway';

/** Headers every message we publish carries (events, RPC requests, DLQ entries). */
export const HEADERS = {
  /** JetStream's dedup key. Equal to the event id for events published by the outbox relay. */
  msgId: 'Nats-Msg-Id',
  /** The event's own id; survives DLQ replay (which must publish under a new Nats-Msg-Id). */
  eventId: 'Ferry-Event-Id',
  eventType: 'Ferry-Event-Type',
  schemaVersion: 'Ferry-Schema-Version',
  occurredAt: 'Ferry-Occurred-At',
  /** The HTTP request id (or other origin) that caused this message, followed across services. */
  correlationId: 'Ferry-Correlation-Id',
  /** The id of the message that directly caused this one. */
  causationId: 'Ferry-Causation-Id',
  /** On DLQ entries: where the message came from and why it was dead-lettered. */
  dlqStream: 'Ferry-Dlq-Stream',
  dlqConsumer: 'Ferry-Dlq-Consumer',
  dlqStreamSeq: 'Ferry-Dlq-Stream-Seq',
  dlqSubject: 'Ferry-Dlq-Subject',
  dlqReason: 'Ferry-Dlq-Reason',
  dlqDeliveries: 'Ferry-Dlq-Deliveries',
  dlqFailedAt: 'Ferry-Dlq-Failed-At',
  /** On replayed messages: the DLQ sequence they were replayed from. */
  replayOf: 'Ferry-Replay-Of',
} as const;

// ---------------------------------------------------------------------------------------------
// Streams

export interface StreamDefinition {
  /** Stream name (before namespacing). */
  readonly name: string;
  /** Subject filters (before namespacing). */
  readonly subjects: readonly string[];
  /** How long messages are kept. */
  readonly maxAgeMs: number;
  readonly owner: ServiceName | 'platform';
}

const DAY_MS = 24 * 3600 * 1000;

/** One stream per producing service, plus the dead-letter stream. */
export const STREAMS = {
  PRODUCTION: { name: 'PRODUCTION', subjects: ['production.evt.>'], maxAgeMs: 7 * DAY_MS, owner: 'production' },
  TRANSFER: { name: 'TRANSFER', subjects: ['transfer.evt.>'], maxAgeMs: 7 * DAY_MS, owner: 'transfer' },
  QA: { name: 'QA', subjects: ['qa.evt.>'], maxAgeMs: 7 * DAY_MS, owner: 'qa' },
  DLQ: { name: 'DLQ', subjects: ['dlq.>'], maxAgeMs: 30 * DAY_MS, owner: 'platform' },
} as const satisfies Record<string, StreamDefinition>;

export type StreamName = keyof typeof STREAMS;

/** JetStream drops a repeated Nats-Msg-Id inside this window (design: 10 minutes). */
export const DUPLICATE_WINDOW_MS = 10 * 60 * 1000;

// ---------------------------------------------------------------------------------------------
// Events

export interface EventDefinition<S extends z.ZodType = z.ZodType> {
  /** `<service>.evt.<aggregate>.<event>.v<N>`: also the subject (before namespacing). */
  readonly type: string;
  readonly stream: StreamName;
  readonly version: number;
  readonly schema: S;
  /**
   * When true the aggregate id is appended as the last subject token so one aggregate can be followed
   * with a filter (`qa.evt.bulk_run.progress.v1.<run_id>`).
   */
  readonly perAggregateSubject: boolean;
  readonly description: string;
}

const EVENT_TYPE = /^(production|transfer|qa)\.evt\.[a-z_]+\.[a-z_]+\.v([1-9][0-9]*)$/;

export function defineEvent<S extends z.ZodType>(def: {
  type: string;
  schema: S;
  description: string;
  perAggregateSubject?: boolean;
}): EventDefinition<S> {
  const match = EVENT_TYPE.exec(def.type);
  if (!match) throw new Error(`event type ${def.type} must match <service>.evt.<aggregate>.<event>.v<N>`);
  const stream = match[1]!.toUpperCase() as StreamName;
  return {
    type: def.type,
    stream,
    version: Number(match[2]),
    schema: def.schema,
    perAggregateSubject: def.perAggregateSubject ?? false,
    description: def.description,
  };
}

export type EventPayload<E extends EventDefinition> = z.infer<E['schema']>;

// ---------------------------------------------------------------------------------------------
// Durable consumers

/** Where a consumer's handler runs: see `ConsumerDefinition.transaction`. */
export type ConsumerTransaction = 'inbox' | 'handler';

export interface ConsumerDefinition<T extends ConsumerTransaction = ConsumerTransaction> {
  /** Durable name, `<service>__<purpose>`. */
  readonly durable: string;
  readonly service: ServiceName;
  readonly stream: StreamName;
  /** One filter subject (nats-server 2.9 has no multi-filter consumers). */
  readonly filterSubject: string;
  /** The event types this consumer accepts; anything else is dead-lettered as unknown. */
  readonly events: readonly EventDefinition[];
  /**
   * Redelivery timer for an unacknowledged message. Must exceed the handler's p99; long handlers
   * call `working()` (the runner does it every ackWait/3). Default 30 s.
   */
  readonly ackWaitMs: number;
  /** Deliveries before the message is dead-lettered. Finite so the server's advisory fires. Default 8. */
  readonly maxDeliver: number;
  /** Server-side cap on unacknowledged messages across all replicas. Default 256. */
  readonly maxAckPending: number;
  /** Messages one process handles at once. Default 8 (a service may override it from its config). */
  readonly concurrency: number;
  /**
   * `inbox` (default): the inbox row, the handler's effect and its outbox rows share one transaction,
   * committed before the ack — exactly-once effect for free. `handler`: the handler runs outside any
   * transaction and makes its effect idempotent itself (a claim, a compare-and-set); for long work that
   * must not hold a transaction open (a QA check streaming a recording).
   */
  readonly transaction: T;
}

interface ConsumerSpec {
  durable: string;
  service: ServiceName;
  events: readonly EventDefinition[];
  filterSubject?: string;
  ackWaitMs?: number;
  maxDeliver?: number;
  maxAckPending?: number;
  concurrency?: number;
  transaction?: ConsumerTransaction;
}

/** The definition keeps its `transaction` in its type, so a handler's context can follow it (no `trx` in `handler` mode). */
export function defineConsumer(def: ConsumerSpec & { transaction: 'handler' }): ConsumerDefinition<'handler'>;
export function defineConsumer(def: ConsumerSpec & { transaction?: 'inbox' }): ConsumerDefinition<'inbox'>;
export function defineConsumer(def: ConsumerSpec): ConsumerDefinition {
  const first = def.events[0];
  if (!first) throw new Error(`consumer ${def.durable} handles no events`);
  if (!def.durable.startsWith(`${def.service}__`)) {
    throw new Error(`consumer ${def.durable} must be named ${def.service}__<purpose>`);
  }
  const streams = new Set(def.events.map((e) => e.stream));
  if (streams.size !== 1) throw new Error(`consumer ${def.durable} spans several streams`);
  if (def.events.length > 1 && !def.filterSubject) {
    throw new Error(`consumer ${def.durable} handles several events: give a wildcard filterSubject`);
  }
  return {
    durable: def.durable,
    service: def.service,
    stream: first.stream,
    filterSubject: def.filterSubject ?? (first.perAggregateSubject ? `${first.type}.*` : first.type),
    events: def.events,
    ackWaitMs: def.ackWaitMs ?? 30_000,
    maxDeliver: def.maxDeliver ?? 8,
    maxAckPending: def.maxAckPending ?? 256,
    concurrency: def.concurrency ?? 8,
    transaction: def.transaction ?? 'inbox',
  };
}

// ---------------------------------------------------------------------------------------------
// Request/reply (core NATS, queue group per service)

export interface RpcDefinition<Req extends z.ZodType = z.ZodType, Res extends z.ZodType = z.ZodType> {
  /** `<service>.rpc.<aggregate>.<verb>` (before namespacing). */
  readonly subject: string;
  readonly service: ServiceName;
  /**
   * Commands run in one transaction with the command log; queries read without one; `work` is a long
   * command that opens its own short transactions (a QA check streams gigabytes: it must not hold one
   * open) and makes its effect safe to repeat itself.
   */
  readonly kind: 'command' | 'query' | 'work';
  readonly request: Req;
  readonly reply: Res;
}

const RPC_SUBJECT = /^(production|transfer|qa|gateway)\.rpc\.[a-z_]+\.[a-z_]+$/;

export function defineRpc<Req extends z.ZodType, Res extends z.ZodType>(def: {
  subject: string;
  kind: 'command' | 'query' | 'work';
  request: Req;
  reply: Res;
}): RpcDefinition<Req, Res> {
  const match = RPC_SUBJECT.exec(def.subject);
  if (!match) throw new Error(`rpc subject ${def.subject} must match <service>.rpc.<aggregate>.<verb>`);
  return { ...def, service: match[1] as ServiceName };
}

export type RpcRequest<R extends RpcDefinition> = z.infer<R['request']>;
export type RpcReply<R extends RpcDefinition> = z.infer<R['reply']>;

/** Carried with every RPC request: who asks, and which HTTP request caused it. */
export const RpcCallContext = z.object({
  request_id: z.string().min(1).max(128),
  actor: Actor,
  /**
   * Set for commands sent under an Idempotency-Key: the service records it in its command log in the
   * same transaction as the effect, so a replayed command returns the first reply instead of re-running.
   */
  command_id: z.uuid().optional(),
});
export type RpcCallContext = z.infer<typeof RpcCallContext>;

export const RpcRequestEnvelope = z.object({ ctx: RpcCallContext, data: z.unknown() });

export const RpcErrorBody = z.object({
  code: z.string().refine(isErrorCode, 'unknown error code'),
  message: z.string(),
  details: z.record(z.string(), z.unknown()).optional(),
});
export type RpcErrorBody = z.infer<typeof RpcErrorBody>;

export const RpcReplyEnvelope = z.discriminatedUnion('ok', [
  z.object({ ok: z.literal(true), data: z.unknown() }),
  z.object({ ok: z.literal(false), error: RpcErrorBody }),
]);
export type RpcReplyEnvelope = z.infer<typeof RpcReplyEnvelope>;

/** Every service answers this on `<service>.rpc.health.ping`; the gateway's /readyz calls it. */
export function healthPing(service: Exclude<ServiceName, 'gateway'>) {
  return defineRpc({
    subject: `${service}.rpc.health.ping`,
    kind: 'query',
    request: z.object({}),
    reply: z.object({ service: z.string(), postgres: z.boolean() }),
  });
}
