import { DeadLetterQueue } from '@ferry/platform';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import type { Env } from './setup.js';

async function withDlq<T>(env: Env, fn: (dlq: DeadLetterQueue) => Promise<T>): Promise<T> {
  const nc = await connect({ servers: env.natsUrl.split(','), name: 'ferry-cli' });
  try {
    return await fn(new DeadLetterQueue(await jetstreamManager(nc), jetstream(nc), env.ns));
  } finally {
    await nc.close();
  }
}

export function dlqList(env: Env, options: { consumer?: string; limit?: number }) {
  return withDlq(env, (dlq) => dlq.list({ consumer: options.consumer, limit: options.limit }));
}

export function dlqReplay(env: Env, seq: number) {
  return withDlq(env, (dlq) => dlq.replay(seq));
}
