import { HEADERS, STREAMS } from '@ferry/contracts';
import type { JetStreamClient, JetStreamManager, StoredMsg } from '@nats-io/jetstream';
import { newId } from '../ids/ids.js';

import type { Namespace } from '../namespace/namespace.js';
import { headersToRecord, toNatsHeaders } from './envelope.js';

export interface DeadLetter {
  /** Local (un-namespaced) names of where the message failed. */
  stream: string;
  consumer: string;
  streamSeq: number;
  subject: string;
  deliveries: number;
  reason: string;
  headers: Record<string, string>;
  data: Uint8Array;
}

/** Subject of a DLQ entry: `dlq.<STREAM>.<consumer>`. */
export function dlqSubject(ns: Namespace, stream: string, consumer: string): string {
  return ns.subject(`dlq.${stream}.${consumer}`);
}

/**
 * Publishes a dead letter. The dedup key is `(stream, consumer, seq)`, so the consumer's own record
 * (which knows the reason) and the advisory forwarder's fallback record make one DLQ entry.
 */
export async function publishDeadLetter(js: JetStreamClient, ns: Namespace, letter: DeadLetter): Promise<void> {
  const carried = { ...letter.headers };
  delete carried[HEADERS.msgId];
  await js.publish(dlqSubject(ns, letter.stream, letter.consumer), letter.data, {
    msgID: `dlq:${letter.stream}:${letter.consumer}:${letter.streamSeq}`,
    headers: toNatsHeaders({
      ...carried,
      [HEADERS.dlqStream]: letter.stream,
      [HEADERS.dlqConsumer]: letter.consumer,
      [HEADERS.dlqStreamSeq]: String(letter.streamSeq),
      [HEADERS.dlqSubject]: letter.subject,
      [HEADERS.dlqReason]: letter.reason.replace(/[\r\n]+/g, ' ').slice(0, 2000),
      [HEADERS.dlqDeliveries]: String(letter.deliveries),
      [HEADERS.dlqFailedAt]: new Date().toISOString(),
    }),
  });
}

export interface DlqEntry {
  /** Sequence in the DLQ stream: the handle for replay. */
  seq: number;
  stream: string;
  consumer: string;
  streamSeq: number;
  subject: string;
  reason: string;
  deliveries: number;
  failedAt: string;
  eventId?: string;
  eventType?: string;
  data: string;
}

function toEntry(m: StoredMsg): DlqEntry {
  const h = headersToRecord(m.header);
  return {
    seq: m.seq,
    stream: h[HEADERS.dlqStream] ?? '',
    consumer: h[HEADERS.dlqConsumer] ?? '',
    streamSeq: Number(h[HEADERS.dlqStreamSeq] ?? 0),
    subject: h[HEADERS.dlqSubject] ?? '',
    reason: h[HEADERS.dlqReason] ?? '',
    deliveries: Number(h[HEADERS.dlqDeliveries] ?? 0),
    failedAt: h[HEADERS.dlqFailedAt] ?? m.time.toISOString(),
    eventId: h[HEADERS.eventId],
    eventType: h[HEADERS.eventType],
    data: m.string(),
  };
}

/** Ops view of the DLQ: list what is dead and put it back where it came from. */
export class DeadLetterQueue {
  constructor(
    private readonly jsm: JetStreamManager,
    private readonly js: JetStreamClient,
    private readonly ns: Namespace,
  ) {}

  private get stream() {
    return this.ns.stream(STREAMS.DLQ.name);
  }

  /** Entries still in the DLQ, oldest first. */
  async list(filter: { consumer?: string; limit?: number; afterSeq?: number } = {}): Promise<DlqEntry[]> {
    const info = await this.jsm.streams.info(this.stream);
    const out: DlqEntry[] = [];
    const limit = filter.limit ?? 100;
    let seq = Math.max(info.state.first_seq, (filter.afterSeq ?? 0) + 1);
    while (seq <= info.state.last_seq && out.length < limit) {
      const m = await this.jsm.streams.getMessage(this.stream, { seq }).catch(() => null);
      seq++;
      if (!m) continue; // deleted (replayed) entries leave gaps
      const entry = toEntry(m);
      if (filter.consumer && entry.consumer !== filter.consumer) continue;
      out.push(entry);
    }
    return out;
  }

  async get(seq: number): Promise<DlqEntry | null> {
    const m = await this.jsm.streams.getMessage(this.stream, { seq }).catch(() => null);
    return m ? toEntry(m) : null;
  }

  /**
   * Republishes the entry to its original subject (every consumer of that subject sees it again;
   * those that handled it already skip it through their inbox, keyed by Ferry-Event-Id) and removes
   * it from the DLQ. A new Nats-Msg-Id is required: the original is still inside the dedup window.
   */
  async replay(seq: number): Promise<{ replayed: DlqEntry; newStreamSeq: number }> {
    const m = await this.jsm.streams.getMessage(this.stream, { seq });
    if (!m) throw new Error(`no DLQ entry ${seq}`);
    const entry = toEntry(m);
    const headers = headersToRecord(m.header);
    for (const k of Object.keys(headers)) if (k.startsWith('Ferry-Dlq-') || k === HEADERS.msgId) delete headers[k];
    const ack = await this.js.publish(entry.subject, m.data, {
      msgID: `replay:${seq}:${newId()}`,
      headers: toNatsHeaders({ ...headers, [HEADERS.replayOf]: String(seq) }),
    });
    await this.jsm.streams.deleteMessage(this.stream, seq, false);
    return { replayed: entry, newStreamSeq: ack.seq };
  }
}
