import type { Actor, RpcCallContext, RpcDefinition } from '@ferry/contracts';
import { createLogger, newId, RpcClient } from '@ferry/platform';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { z } from 'zod';
import { CliError } from '../cli-error.js';
import type { Env } from './setup.js';

/** Typed calls to the services as one actor, the way the gateway makes them. */
export interface AdminRpc {
  readonly actor: Actor;
  call<R extends RpcDefinition>(def: R, data: z.input<R['request']>): Promise<z.infer<R['reply']>>;
}

export interface AdminRpcOptions {
  /** The organization the commands act in. */
  org: string;
  /** Who the services record as the actor (`created_by` of a pairing token…). Default `ferry-cli`. */
  sub?: string;
  /** How long a service may take to answer. Default 10 s. */
  timeoutMs?: number;
}

async function connectOnce(env: Env, name: string): Promise<NatsConnection> {
  try {
    // One attempt with a short timeout: a command line must say at once that NATS is not there,
    // where a service would keep retrying (platform's connectNats).
    return await connect({ servers: env.natsUrl.split(',').map((s) => s.trim()), name, timeout: 5_000 });
  } catch (err) {
    throw new CliError(
      `cannot reach NATS at ${env.natsUrl} (${(err as Error).message}): is the system running? (npm start)`,
      { cause: err },
    );
  }
}

/**
 * Runs `fn` with RPC access to the services as an admin of `org`. The CLI talks to the services over
 * NATS as the gateway does, without a token: being able to reach NATS is the credential, as it is for
 * `ferry setup` and `ferry dlq`.
 */
export async function withAdminRpc<T>(
  env: Env,
  options: AdminRpcOptions,
  fn: (rpc: AdminRpc) => Promise<T>,
): Promise<T> {
  const nc = await connectOnce(env, 'ferry-cli');
  try {
    const client = new RpcClient({
      nc,
      ns: env.ns,
      logger: createLogger({ service: 'cli', level: 'silent' }),
      timeoutMs: options.timeoutMs ?? 10_000,
    });
    const actor: Actor = { kind: 'user', sub: options.sub ?? 'ferry-cli', org: options.org, role: 'admin' };
    const ctx = (): RpcCallContext => ({ request_id: `cli-${newId()}`, actor });
    return await fn({ actor, call: (def, data) => client.call(def, data, ctx()) });
  } finally {
    await nc.close();
  }
}
