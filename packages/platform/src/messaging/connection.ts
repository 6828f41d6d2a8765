import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from '../logging/logger.js';

export type { NatsConnection } from '@nats-io/transport-node';

export interface NatsOptions {
  /** Comma-separated server URLs. */
  servers: string;
  /** Connection name shown by the server (`nats server report connections`). */
  name: string;
  logger: Logger;
}

/**
 * Connects and keeps reconnecting forever: a NATS outage makes the process unready, never dead.
 * Resolves only once the first connection is up, so callers start in a known state.
 */
export async function connectNats(options: NatsOptions): Promise<NatsConnection> {
  const nc = await connect({
    servers: options.servers.split(',').map((s) => s.trim()),
    name: options.name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 1_000,
    waitOnFirstConnect: true,
    pingInterval: 10_000,
    // Otherwise every request and publish allocates an Error to keep an async stack trace, which
    // dominated CPU profiles of bulk work; our errors carry subjects and ids instead.
    noAsyncTraces: true,
  });
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === 'disconnect' || status.type === 'reconnect' || status.type === 'error') {
        options.logger.warn(
          { nats_status: status.type, server: 'server' in status ? status.server : undefined },
          'nats connection status',
        );
      }
    }
  })();
  return nc;
}
