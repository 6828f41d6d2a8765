import type { ConsumerMessages, JetStreamClient, JsMsg } from '@nats-io/jetstream';
import type { Logger } from '../logging/logger.js';

export interface PullLoopOptions {
  js: JetStreamClient;
  stream: string;
  durable: string;
  /** Messages handled at once by this process; also the pull batch, so prefetched messages do not age. */
  concurrency: number;
  logger: Logger;
  handle(msg: JsMsg): Promise<void>;
}

/**
 * Pulls from a durable consumer and runs up to `concurrency` handlers at once. `stop()` stops pulling,
 * then waits for the handlers already running, so shutdown never abandons a message mid-transaction.
 */
export class PullLoop {
  private messages?: ConsumerMessages;
  private readonly inFlight = new Set<Promise<void>>();
  private done?: Promise<void>;
  private stopping = false;

  constructor(private readonly options: PullLoopOptions) {}

  async start(): Promise<void> {
    const consumer = await this.options.js.consumers.get(this.options.stream, this.options.durable);
    const messages = await consumer.consume({ max_messages: this.options.concurrency });
    this.messages = messages;
    void (async () => {
      for await (const s of messages.status()) {
        if (s.type === 'heartbeats_missed' || s.type === 'consumer_deleted' || s.type === 'consumer_not_found') {
          this.options.logger.warn({ consumer: this.options.durable, status: s.type }, 'consumer status');
        }
      }
    })().catch(() => undefined);
    this.done = (async () => {
      for await (const msg of messages) {
        if (this.stopping) break; // not acked: redelivered to another replica after ack_wait
        while (this.inFlight.size >= this.options.concurrency) await Promise.race(this.inFlight);
        const p = this.options
          .handle(msg)
          .catch((err) => this.options.logger.error({ err, consumer: this.options.durable }, 'message handler crashed'))
          .finally(() => this.inFlight.delete(p));
        this.inFlight.add(p);
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.messages?.close().catch(() => undefined);
    await this.done?.catch(() => undefined);
    await Promise.allSettled([...this.inFlight]);
  }
}
