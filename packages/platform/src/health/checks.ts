import type { RpcDefinition } from '@ferry/contracts';
import type { NatsConnection } from '@nats-io/transport-node';
import type pg from 'pg';
import type { RpcClient } from '../messaging/rpc-client.js';
import type { DependencyMonitor } from './dependency-monitor.js';

/** A readiness dependency: resolves when healthy, rejects with the reason when not. */
export interface HealthCheck {
  readonly name: string;
  check(): Promise<void>;
}

export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
    }),
  ]);
}

export function postgresCheck(pool: pg.Pool): HealthCheck {
  return {
    name: 'postgres',
    async check() {
      await pool.query('select 1');
    },
  };
}

/** `nc` may be undefined while the first connection is still being made. */
export function natsCheck(getConnection: () => NatsConnection | undefined, monitor?: DependencyMonitor): HealthCheck {
  return {
    name: 'nats',
    async check() {
      const nc = getConnection();
      if (!nc) throw new Error('not connected yet');
      if (monitor?.isDown('nats')) throw new Error('disconnected; reconnecting');
      if (nc.isClosed()) throw new Error('connection closed');
      await nc.flush();
    },
  };
}

/** A downstream service answers its ping (the gateway's readiness). */
export function rpcCheck(name: string, getClient: () => RpcClient | undefined, ping: RpcDefinition): HealthCheck {
  return {
    name,
    async check() {
      const client = getClient();
      if (!client) throw new Error('nats not connected yet');
      const reply = (await client.call(
        ping,
        {},
        {
          request_id: 'readyz',
          actor: { kind: 'system', sub: 'readyz', org: '00000000-0000-0000-0000-000000000000', role: null },
        },
        { timeoutMs: 1_500 },
      )) as { postgres: boolean };
      if (!reply.postgres) throw new Error(`${name} cannot reach its database`);
    },
  };
}
