import type { JetStreamClient, JetStreamManager, JsMsg } from '@nats-io/jetstream';
import { z } from 'zod';
import type { Logger } from '../logging/logger.js';
import type { Namespace } from '../namespace/namespace.js';
import { publishDeadLetter } from './dead-letters.js';
import { headersToRecord } from './envelope.js';
import { PullLoop } from './pull-loop.js';
import { ADVISORIES_STREAM, DLQ_FORWARDER_DURABLE } from './topology.js';

const Advisory = z.object({
  type: z.string(),
  stream: z.string(),
  consumer: z.string(),
  stream_seq: z.number().int(),
  deliveries: z.number().int().optional(),
});

/**
 * Turns the server's max-deliveries and terminated advisories (captured in the ADVISORIES stream)
 * into DLQ entries carrying the original message. This is the safety net for deaths the consumer
 * could not record itself (a process that crashes on every delivery); when the consumer already
 * recorded the entry with its reason, the shared dedup key makes this publish a no-op.
 * Every service process runs one; they share the durable, so each advisory is handled once.
 */
export class DlqForwarder {
  private readonly loop: PullLoop;

  constructor(private readonly deps: { js: JetStreamClient; jsm: JetStreamManager; ns: Namespace; logger: Logger }) {
    this.loop = new PullLoop({
      js: deps.js,
      stream: deps.ns.stream(ADVISORIES_STREAM),
      durable: DLQ_FORWARDER_DURABLE,
      concurrency: 4,
      logger: deps.logger,
      handle: (msg) => this.forward(msg),
    });
  }

  start(): Promise<void> {
    return this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  async forward(msg: JsMsg): Promise<void> {
    const { js, jsm, ns, logger } = this.deps;
    const parsed = Advisory.safeParse(msg.json());
    if (!parsed.success) {
      logger.error({ subject: msg.subject }, 'unreadable advisory; dropped');
      msg.term();
      return;
    }
    const adv = parsed.data;
    const stream = ns.localStream(adv.stream);
    if (!stream) {
      msg.ack();
      return;
    }
    try {
      // null when the message is gone (aged out, or the stream was purged).
      const original = await jsm.streams.getMessage(adv.stream, { seq: adv.stream_seq });
      const exhausted = adv.type.endsWith('max_deliver');
      await publishDeadLetter(js, ns, {
        stream,
        consumer: adv.consumer,
        streamSeq: adv.stream_seq,
        subject: original?.subject ?? '',
        deliveries: adv.deliveries ?? 0,
        reason: original
          ? exhausted
            ? `max deliveries (${adv.deliveries ?? '?'}) exhausted`
            : 'terminated by the consumer'
          : 'original message no longer in the stream',
        headers: original ? headersToRecord(original.header) : {},
        data: original?.data ?? new Uint8Array(),
      });
      msg.ack();
    } catch (err) {
      logger.warn({ err, advisory: adv }, 'could not forward advisory to the DLQ; will retry');
      msg.nak(5_000);
    }
  }
}
