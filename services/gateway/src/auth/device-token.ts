import { createHash } from 'node:crypto';
import { type Actor, deviceRpc } from '@ferry/contracts';
import { currentTrace, DomainError, InvalidTokenError, type RpcClient, unavailable } from '@ferry/platform';
import { ANONYMOUS } from '../http/route.js';
import type { BearerStrategy } from './authenticate.js';

export interface DeviceTokenStrategyOptions {
  /** The RPC client (undefined until NATS is connected: then the strategy answers 503). */
  rpc: () => RpcClient | undefined;
  /**
   * How long a checked token is trusted without asking transfer again. A revoked (or deleted
   * device's) token keeps working at most this long on each gateway replica, on the routes production
   * answers (tasks); transfer checks the token's record on every upload call itself. Default 30 s; 0
   * disables the cache.
   */
  ttlMs?: number;
  /** Most tokens remembered at once; the oldest are forgotten first. Default 10,000. */
  maxEntries?: number;
}

/**
 * Device tokens (`fdt_…`, issued by transfer, stored there only as hashes): checked by an RPC to
 * transfer, with a short cache so a device streaming parts does not cost a round trip per request.
 */
export function deviceTokenStrategy(options: DeviceTokenStrategyOptions): BearerStrategy {
  const ttl = options.ttlMs ?? 30_000;
  const max = options.maxEntries ?? 10_000;
  const cache = new Map<string, { actor: Actor; until: number }>();
  return {
    name: 'device',
    matches: (token) => token.startsWith('fdt_'),
    async authenticate(token) {
      const key = createHash('sha256').update(token).digest('hex');
      const hit = cache.get(key);
      if (hit && hit.until > Date.now()) return hit.actor;
      cache.delete(key);
      const rpc = options.rpc();
      if (!rpc) throw unavailable('nats');
      let device: { id: string; device_id: string; organization_id: string };
      let tokenId: string;
      try {
        ({ device, token_id: tokenId } = await rpc.call(
          deviceRpc.authenticate,
          { token },
          { request_id: currentTrace().requestId ?? 'device-auth', actor: ANONYMOUS },
        ));
      } catch (err) {
        if (err instanceof DomainError && (err.code === 'unauthenticated' || err.code === 'validation_failed')) {
          throw new InvalidTokenError('device token is not valid (unknown, revoked, or its device was deleted)');
        }
        throw err;
      }
      // The record and token, not just the name: within the TTL a deleted device's token must not act as a
      // device registered again under the same device_id (transfer checks ownership against `device`).
      const actor: Actor = {
        kind: 'device',
        sub: device.device_id,
        org: device.organization_id,
        role: null,
        device: { id: device.id, token_id: tokenId },
      };
      if (ttl > 0) {
        if (cache.size >= max) cache.delete(cache.keys().next().value!);
        cache.set(key, { actor, until: Date.now() + ttl });
      }
      return actor;
    },
  };
}
