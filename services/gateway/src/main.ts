import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { healthPing, STREAMS } from '@ferry/contracts';
import {
  assertMigrated,
  connectNats,
  createBlobStore,
  createDatabase,
  createLogger,
  createMetrics,
  DependencyMonitor,
  evaluateReadiness,
  HealthServer,
  loadConfig,
  migrationSources,
  Namespace,
  type NatsConnection,
  natsCheck,
  onParentExit,
  postgresCheck,
  RpcClient,
  rpcCheck,
  verifyTopology,
} from '@ferry/platform';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { jwtStrategy } from './auth/authenticate.js';
import { deviceTokenStrategy } from './auth/device-token.js';
import { StreamTickets } from './auth/stream-ticket.js';
import { GatewayConfig } from './config.js';
import type { GatewayDB } from './database.js';
import { createGateway } from './gateway.js';
import { createHttpServer } from './http/http-server.js';
import type { JetStreamAccess } from './http/route.js';
import { IdempotencyStore } from './idempotency/idempotency.store.js';
import { GATEWAY_MIGRATIONS } from './migrations.js';
import { EventStreamHub } from './sse/event-stream.js';

let config: GatewayConfig;
try {
  config = loadConfig(GatewayConfig);
} catch (err) {
  process.stderr.write(`ferry-gateway: ${(err as Error).message}\n`);
  process.exit(1);
}

const version = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string })
  .version;
const logger = createLogger({ service: 'gateway', level: config.LOG_LEVEL });
const metrics = createMetrics('gateway');
const ns = new Namespace(config.FERRY_NAMESPACE);
const schema = ns.schema('gateway');
let probePostgres = async (): Promise<unknown> => undefined;
const monitor = new DependencyMonitor({ logger, probes: { postgres: () => probePostgres() } });
const database = createDatabase<GatewayDB>({
  url: config.DATABASE_URL,
  schema,
  max: config.DB_POOL_MAX,
  applicationName: 'ferry-gateway',
  logger,
  monitor,
});
probePostgres = () => database.pool.query('select 1');
let nc: NatsConnection | undefined;
let rpc: RpcClient | undefined;
let streams: JetStreamAccess | undefined;
let phase: 'starting' | 'running' | 'stopping' = 'starting';
let startingReason = 'connecting to nats';

const checks = [
  postgresCheck(database.pool),
  natsCheck(() => nc, monitor),
  ...(['production', 'transfer', 'qa'] as const).map((s) => rpcCheck(s, () => rpc, healthPing(s))),
];
const events = new EventStreamHub(
  {
    heartbeatMs: config.SSE_HEARTBEAT_MS,
    retryMs: config.SSE_RETRY_MS,
    maxQueuedFrames: config.SSE_QUEUE_MAX_FRAMES,
    maxQueuedBytes: config.SSE_QUEUE_MAX_BYTES,
    stallTimeoutMs: config.SSE_STALL_TIMEOUT_MS,
  },
  metrics,
);
const app = createGateway({
  logger,
  metrics,
  rpc: () => rpc,
  idempotency: new IdempotencyStore(database.db, {
    ttlHours: config.IDEMPOTENCY_TTL_HOURS,
    leaseMs: config.IDEMPOTENCY_LEASE_MS,
  }),
  strategies: [
    jwtStrategy(config.FERRY_JWT_SECRET),
    deviceTokenStrategy({ rpc: () => rpc, ttlMs: config.DEVICE_TOKEN_CACHE_TTL_MS }),
  ],
  readiness: () => evaluateReadiness(checks, { phase, reason: startingReason }),
  bodyLimitBytes: config.BODY_LIMIT_BYTES,
  version,
  monitor,
  blobStore: config.BLOB_STORE === 'local' ? createBlobStore(config) : undefined,
  tickets: new StreamTickets({ secret: config.FERRY_JWT_SECRET, ttlSeconds: config.SSE_TICKET_TTL_SECONDS }),
  jetstream: () => streams,
  events,
});

// The ops port: the same readiness, plus /metrics, which the public API port does not serve.
const health = new HealthServer({ port: config.HEALTH_PORT, host: config.HEALTH_HOST, checks, metrics, logger });
await health.listen();
logger.info({ port: health.port }, 'health endpoint listening');

const server = createHttpServer(app, { logger, hostname: config.HOST });
server.listen(config.PORT, config.HOST, () =>
  logger.info({ port: (server.address() as AddressInfo).port }, 'gateway listening'),
);

let purgeTimer: NodeJS.Timeout | undefined;
let stopping = false;
async function shutdown(signal: string) {
  if (stopping) return;
  stopping = true;
  phase = 'stopping';
  logger.info({ signal }, 'shutting down');
  const timer = setTimeout(() => {
    logger.error('shutdown timed out; exiting');
    process.exit(1);
  }, config.SHUTDOWN_TIMEOUT_MS);
  timer.unref();
  clearInterval(purgeTimer);
  health.markStopping();
  // Stop accepting connections and let in-flight requests finish. Event streams never finish by
  // themselves: end them (clients reconnect to another replica with their last id) and release their consumers.
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  await events.closeAll();
  server.closeIdleConnections();
  await closed;
  await nc?.drain().catch(() => undefined);
  monitor.close();
  await database.close();
  await health.close();
  logger.info('stopped');
  logger.flush();
  setTimeout(() => process.exit(0), 50);
}
process.once('SIGTERM', () => void shutdown('SIGTERM'));
process.once('SIGINT', () => void shutdown('SIGINT'));
onParentExit(() => void shutdown('launcher exited'));

try {
  nc = await connectNats({ servers: config.NATS_URL, name: 'ferry-gateway', logger, monitor });
  rpc = new RpcClient({ nc, ns, logger, timeoutMs: config.RPC_TIMEOUT_MS, monitor, metrics });
  // The SSE relay reads the QA stream: it must exist (provisioned by `ferry setup`, never by us).
  const jsm = await jetstreamManager(nc);
  await verifyTopology(jsm, ns, { streams: [STREAMS.QA.name], consumers: [] });
  streams = { js: jetstream(nc), jsm, ns };
  startingReason = 'waiting for postgres';
  for (let attempt = 1; ; attempt++) {
    try {
      await database.pool.query('select 1');
      break;
    } catch (err) {
      logger.warn({ err, attempt }, 'postgres not reachable yet');
      await new Promise((r) => setTimeout(r, Math.min(500 * attempt, 5_000)));
    }
  }
  await assertMigrated(database.pool, schema, migrationSources(GATEWAY_MIGRATIONS));
  const store = new IdempotencyStore(database.db);
  purgeTimer = setInterval(() => {
    store.purgeExpired().catch((err) => logger.warn({ err }, 'idempotency purge failed'));
  }, 600_000);
  purgeTimer.unref();
  phase = 'running';
  health.markRunning();
  logger.info({ namespace: ns.prefix || undefined }, 'ready');
} catch (err) {
  logger.fatal({ err }, (err as Error).message);
  setTimeout(() => process.exit(1), 100);
}
