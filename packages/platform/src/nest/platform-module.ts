import { type DynamicModule, Module } from '@nestjs/common';
import { Kysely } from 'kysely';
import type { BlobStore } from '../blob/blob-store.js';
import type { Logger } from '../logging/logger.js';
import { Outbox } from '../messaging/outbox.js';
import type { RpcClient } from '../messaging/rpc-client.js';
import type { Metrics } from '../metrics/metrics.js';
import { Namespace } from '../namespace/namespace.js';

/** Injection tokens for what has no class of its own. */
export const LOGGER = Symbol('ferry.logger');
export const CONFIG = Symbol('ferry.config');
export const METRICS = Symbol('ferry.metrics');
export const BLOB_STORE = Symbol('ferry.blob-store');
export const RPC_CLIENT = Symbol('ferry.rpc-client');

export interface PlatformProviders {
  db: Kysely<any>;
  outbox: Outbox;
  ns: Namespace;
  logger: Logger;
  config: unknown;
  metrics: Metrics;
  rpcClient: RpcClient;
  blobStore?: BlobStore;
}

/** Makes the runtime (database, outbox, logger, config…) injectable in every module of a service. */
@Module({})
// biome-ignore lint/complexity/noStaticOnlyClass: Nest dynamic modules are classes with a static forRoot.
export class PlatformModule {
  static forRoot(p: PlatformProviders): DynamicModule {
    const providers = [
      { provide: Kysely, useValue: p.db },
      { provide: Outbox, useValue: p.outbox },
      { provide: Namespace, useValue: p.ns },
      { provide: LOGGER, useValue: p.logger },
      { provide: CONFIG, useValue: p.config },
      { provide: METRICS, useValue: p.metrics },
      { provide: RPC_CLIENT, useValue: p.rpcClient },
      ...(p.blobStore ? [{ provide: BLOB_STORE, useValue: p.blobStore }] : []),
    ];
    return { module: PlatformModule, global: true, providers, exports: providers.map((x) => x.provide) };
  }
}
