import { AsyncLocalStorage } from 'node:async_hooks';

/** What a log line and an outgoing message inherit from the work that caused them. */
export interface TraceContext {
  /** The HTTP request id that started the chain; follows it through NATS into every service. */
  readonly requestId?: string;
  /** The id of the message being handled (event id or RPC command id). */
  readonly causationId?: string;
}

const storage = new AsyncLocalStorage<TraceContext>();

export function runWithTrace<T>(ctx: TraceContext, fn: () => T): T {
  return storage.run({ ...storage.getStore(), ...ctx }, fn);
}

export function currentTrace(): TraceContext {
  return storage.getStore() ?? {};
}
