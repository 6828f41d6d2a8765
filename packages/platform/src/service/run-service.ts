import 'reflect-metadata';
import type { ConsumerDefinition, RpcDefinition, StreamName } from '@ferry/contracts';
import { healthPing } from '@ferry/contracts';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { type DynamicModule, Module, type Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { z } from 'zod';
import type { BlobStore } from '../blob/blob-store.js';
import { BaseConfig, loadConfig } from '../config/config.js';
import { createDatabase } from '../db/database.js';
import { assertMigrated, type MigrationSource } from '../db/migrator.js';
import { natsCheck, postgresCheck } from '../health/checks.js';
import { DependencyMonitor } from '../health/dependency-monitor.js';
import { HealthServer } from '../health/health-server.js';
import { createLogger, type Logger } from '../logging/logger.js';
import { connectNats } from '../messaging/connection.js';
import { DlqForwarder } from '../messaging/dlq-forwarder.js';
import { InboxConsumer } from '../messaging/inbox-consumer.js';
import { Outbox } from '../messaging/outbox.js';
import { OutboxRelay } from '../messaging/outbox-relay.js';
import { RpcClient } from '../messaging/rpc-client.js';
import { RpcServer } from '../messaging/rpc-server.js';
import { verifyTopology } from '../messaging/topology.js';
import { createMetrics } from '../metrics/metrics.js';
import { Namespace } from '../namespace/namespace.js';
import { FerryTransport, PassThroughRpcFilter, PinoNestLogger } from '../nest/ferry-transport.js';
import { PlatformModule } from '../nest/platform-module.js';
import { PLATFORM_MIGRATIONS } from '../platform-migrations.js';
import { Housekeeper } from './housekeeper.js';
import { onParentExit } from './parent-watch.js';

export const ServiceConfig = BaseConfig.extend({
  /** Port of /healthz, /readyz and /metrics. */
  HEALTH_PORT: z.coerce.number().int().min(0).max(65535),
  HEALTH_HOST: z.string().default('0.0.0.0'),
});
export type ServiceConfig = z.infer<typeof ServiceConfig>;

export interface ServiceDefinition<C extends ServiceConfig> {
  name: 'production' | 'transfer' | 'qa';
  config: z.ZodType<C>;
  /** The service's Nest module; PlatformModule's providers are injectable in it. */
  module: Type<unknown> | DynamicModule;
  migrations: MigrationSource;
  rpcs: readonly RpcDefinition[];
  consumers: readonly ConsumerDefinition[];
  /** Streams the service publishes to or consumes from; checked at boot. */
  streams: readonly StreamName[];
  /** Optional blob store, built from the config. */
  blobStore?: (config: C) => BlobStore;
  /** Messages a consumer of this process handles at once, by durable name, when the config says (default: the contract's). */
  consumerConcurrency?: (config: C) => Partial<Record<string, number>>;
}

export function migrationSources(service: MigrationSource): MigrationSource[] {
  return [PLATFORM_MIGRATIONS, service];
}

async function retry<T>(what: string, logger: Logger, fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      const wait = Math.min(500 * attempt, 5_000);
      logger.warn({ err, attempt }, `${what} not reachable yet; retrying in ${wait} ms`);
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}

/**
 * Boots a NestJS service on the platform: config, logs, health endpoint first (so /readyz explains a
 * slow start), then NATS and Postgres (waited for), then the checks that fail fast (schema migrated,
 * streams and consumers provisioned), then RPC handlers, inbox consumers, outbox relay, DLQ forwarder.
 * SIGTERM/SIGINT drain in reverse order: stop taking work, finish in-flight messages, close NATS and the pool.
 */
export async function runService<C extends ServiceConfig>(def: ServiceDefinition<C>): Promise<void> {
  let config: C;
  try {
    config = loadConfig(def.config);
  } catch (err) {
    process.stderr.write(`ferry-${def.name}: ${(err as Error).message}\n`);
    process.exit(1);
  }
  const logger = createLogger({ service: def.name, level: config.LOG_LEVEL });
  const metrics = createMetrics(def.name);
  const ns = new Namespace(config.FERRY_NAMESPACE);
  const schema = ns.schema(def.name);
  let probePostgres = async (): Promise<unknown> => undefined;
  const monitor = new DependencyMonitor({ logger, probes: { postgres: () => probePostgres() } });
  const database = createDatabase({
    url: config.DATABASE_URL,
    schema,
    max: config.DB_POOL_MAX,
    applicationName: `ferry-${def.name}`,
    logger,
    monitor,
  });
  probePostgres = () => database.pool.query('select 1');
  let nc: NatsConnection | undefined;
  const health = new HealthServer({
    port: config.HEALTH_PORT,
    host: config.HEALTH_HOST,
    checks: [postgresCheck(database.pool), natsCheck(() => nc, monitor)],
    metrics,
    logger,
  });
  await health.listen();
  logger.info({ port: health.port }, 'health endpoint listening');

  const fatal = (err: unknown) => {
    logger.fatal({ err }, (err as Error).message);
    setTimeout(() => process.exit(1), 100);
  };

  let shutdown: (() => Promise<void>) | undefined;
  let stopping = false;
  const onSignal = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    health.markStopping();
    const timer = setTimeout(() => {
      logger.error('shutdown timed out; exiting');
      process.exit(1);
    }, config.SHUTDOWN_TIMEOUT_MS);
    timer.unref();
    (shutdown ?? (async () => undefined))()
      .then(() => health.close())
      .then(() => {
        logger.info('stopped');
        logger.flush();
        setTimeout(() => process.exit(0), 50);
      })
      .catch((err) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      });
  };
  process.once('SIGTERM', () => onSignal('SIGTERM'));
  process.once('SIGINT', () => onSignal('SIGINT'));
  onParentExit(() => onSignal('launcher exited'));

  try {
    health.starting('connecting to nats');
    nc = await connectNats({ servers: config.NATS_URL, name: `ferry-${def.name}`, logger, monitor });
    health.starting('waiting for postgres');
    await retry('postgres', logger, () => database.pool.query('select 1'));
    await assertMigrated(database.pool, schema, migrationSources(def.migrations));
    const jsm = await jetstreamManager(nc);
    const js = jetstream(nc);
    await verifyTopology(jsm, ns, { streams: def.streams, consumers: def.consumers });
    if (stopping) return;

    const outbox = new Outbox(ns);
    const rpcClient = new RpcClient({ nc, ns, logger, monitor, metrics });
    const rpc = new RpcServer({ nc, ns, service: def.name, db: database.db, logger, metrics, monitor });
    rpc.register(healthPing(def.name), async () => ({
      service: def.name,
      postgres: await database.pool.query('select 1').then(
        () => true,
        () => false,
      ),
    }));
    const transport = new FerryTransport({
      rpc,
      rpcs: def.rpcs,
      consumers: def.consumers,
      createConsumer: (consumer, handler) =>
        new InboxConsumer({
          def: consumer,
          handler,
          db: database.db,
          js,
          ns,
          logger,
          metrics,
          monitor,
          concurrency: def.consumerConcurrency?.(config)[consumer.durable],
        }),
    });

    @Module({})
    class ServiceRoot {}
    const app = await NestFactory.createMicroservice(
      {
        module: ServiceRoot,
        imports: [
          PlatformModule.forRoot({
            db: database.db,
            outbox,
            ns,
            logger,
            config,
            metrics,
            rpcClient,
            blobStore: def.blobStore?.(config),
          }),
          def.module,
        ],
      },
      { strategy: transport, logger: new PinoNestLogger(logger), abortOnError: false },
    );
    app.useGlobalFilters(new PassThroughRpcFilter());
    await app.listen();

    const relay = new OutboxRelay({
      db: database.db,
      databaseUrl: config.DATABASE_URL,
      schema,
      js,
      logger,
      metrics,
      monitor,
    });
    await relay.start();
    const forwarder = new DlqForwarder({ js, jsm, ns, logger });
    await forwarder.start();
    const housekeeper = new Housekeeper({ db: database.db, logger });
    housekeeper.start();
    metrics.gauge('ferry_outbox_backlog', 'Unpublished outbox rows.', async () => {
      const { rows } = await database.pool.query<{ n: number }>(
        'select count(*)::int as n from outbox where published_at is null',
      );
      return rows[0]?.n ?? 0;
    });

    shutdown = async () => {
      await app.close(); // RPC subscriptions drained, consumers stopped after their in-flight messages
      await forwarder.stop();
      await relay.stop();
      await housekeeper.stop();
      await nc?.drain();
      monitor.close();
      await database.close();
    };
    health.markRunning();
    logger.info(
      { namespace: ns.prefix || undefined, rpcs: rpc.subjects.length, consumers: def.consumers.length },
      'ready',
    );
  } catch (err) {
    fatal(err);
  }
}
