import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { DependencyMonitor } from '../health/dependency-monitor.js';
import type { Logger } from '../logging/logger.js';

export type { NatsConnection } from '@nats-io/transport-node';

export interface NatsOptions {
  /** Comma-separated server URLs. */
  servers: string;
  /** Connection name shown by the server (`nats server report connections`). */
  name: string;
  logger: Logger;
  /** Told when the connection drops and when it is back, so callers can fail fast meanwhile. */
  monitor?: DependencyMonitor;
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
      if (status.type === 'disconnect') {
        if (options.monitor) options.monitor.down('nats', new Error(`disconnected from ${status.server}`));
        else options.logger.warn({ server: status.server }, 'nats disconnected');
      } else if (status.type === 'reconnect') {
        if (options.monitor) options.monitor.up('nats');
        else options.logger.warn({ server: status.server }, 'nats reconnected');
      } else if (status.type === 'error') {
        options.logger.warn({ err: status.error }, 'nats connection error');
      }
    }
  })();
  return nc;
}
