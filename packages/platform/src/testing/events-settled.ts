import type { JetStreamManager } from '@nats-io/jetstream';
import { type Kysely, sql } from 'kysely';
import { waitFor } from './wait-for.js';

export interface EventsSettledOptions {
  jsm: JetStreamManager;
  /** The full stream name (`infra.ns.stream('PRODUCTION')`). */
  stream: string;
  /** Databases on the schemas whose outboxes publish into `stream`. */
  outboxes: readonly Kysely<any>[];
  /** Consecutive polls that must see a drained outbox and the same last sequence. Default 3. */
  stableReads?: number;
  /** Between polls. Default 100 ms. */
  intervalMs?: number;
  /** Default 15 s. */
  timeoutMs?: number;
}

/**
 * Waits until nothing more can reach `stream` from the given outboxes: every row is marked published
 * (a relay that claimed a row but has not committed still shows it unpublished, so a republish in
 * flight keeps us waiting) and the stream's last sequence has not moved for `stableReads` polls.
 * Read "exactly once" after this, never after a fixed sleep: a late duplicate would land before it
 * returns. Returns the stream's last sequence.
 */
export async function waitForEventsSettled(options: EventsSettledOptions): Promise<number> {
  const stableReads = options.stableReads ?? 3;
  const intervalMs = options.intervalMs ?? 100;
  const deadline = Date.now() + (options.timeoutMs ?? 15_000);
  let previous = -1;
  let stable = 0;
  let unpublished = 0;
  let lastError: unknown;
  for (;;) {
    let last = previous;
    try {
      unpublished = 0;
      for (const db of options.outboxes) {
        const { rows } = await sql<{ n: number }>`
          select count(*)::int as n from outbox where published_at is null`.execute(db);
        unpublished += rows[0]!.n;
      }
      last = (await options.jsm.streams.info(options.stream)).state.last_seq;
      stable = unpublished === 0 && last === previous ? stable + 1 : 0;
      lastError = undefined;
    } catch (err) {
      // A server that has just come back (an outage test) may not answer the first requests.
      stable = 0;
      lastError = err;
    }
    previous = last;
    if (stable >= stableReads) return last;
    if (Date.now() > deadline) {
      throw new Error(
        `events did not settle on ${options.stream} in time: ${unpublished} outbox row(s) unpublished, last sequence ${last}` +
          (lastError ? ` (${String(lastError)})` : ''),
      );
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export interface ConsumerDrainedOptions {
  jsm: JetStreamManager;
  /** The full stream name (`infra.ns.stream('TRANSFER')`). */
  stream: string;
  /** The durable consumer's name. */
  durable: string;
  /** Default 15 s. */
  timeoutMs?: number;
  /** Named in the timeout error. Default `<durable> to drain`. */
  what?: string;
}

/**
 * Waits until a durable consumer has nothing left to deliver and nothing delivered but unacked: every
 * message it will ever see (redeliveries included) has been handled. Count "exactly once" effects of a
 * consumer after this, never after a fixed sleep.
 */
export async function waitForConsumerDrained(options: ConsumerDrainedOptions): Promise<void> {
  await waitFor(
    async () => {
      const info = await options.jsm.consumers.info(options.stream, options.durable);
      return info.num_pending === 0 && info.num_ack_pending === 0;
    },
    { timeoutMs: options.timeoutMs ?? 15_000, what: options.what ?? `${options.durable} to drain` },
  );
}
