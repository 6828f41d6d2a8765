// Public surface of @ferry/platform. Nothing imports this package's internals.

export { InvalidTokenError, type MintOptions, mintAccessToken, verifyAccessToken } from './auth/access-token.js';
export {
  BlobChecksumMismatchError,
  BlobError,
  type BlobErrorCode,
  BlobNotFoundError,
  BlobRangeNotSatisfiableError,
  BlobSizeMismatchError,
  BlobStorageError,
  InvalidBlobKeyError,
  InvalidBlobPartError,
  isBlobError,
  MultipartBusyError,
  MultipartNotFoundError,
} from './blob/blob-errors.js';
export {
  assertValidKey,
  type BlobSource,
  type BlobStat,
  type BlobStore,
  type BlobWriteResult,
  type ByteRange,
  type CompletedPart,
  type CreateMultipartOptions,
  MAX_PART_SIZE,
  MAX_PARTS,
  MIN_PART_SIZE,
  type PartReceipt,
  type PresignedPart,
  type PresignPartOptions,
  type PutOptions,
  type WritePartOptions,
} from './blob/blob-store.js';
export { BlobStoreConfig, type CreateBlobStoreOptions, createBlobStore } from './blob/blob-store-config.js';
export { LocalBlobStore, type LocalBlobStoreOptions } from './blob/local-blob-store.js';
export { S3BlobStore, type S3BlobStoreOptions } from './blob/s3-blob-store.js';
export { BaseConfig, ConfigError, loadConfig } from './config/config.js';
export { createDatabase, createPool, type Database, type DatabaseOptions } from './db/database.js';
export type { CommandLogTable, InboxTable, MessagingTables, OutboxTable } from './db/messaging-tables.js';
export {
  assertMigrated,
  MigrationError,
  type MigrationSource,
  type MigrationStatus,
  migrate,
  migrationStatus,
} from './db/migrator.js';
export { inTransaction, isRetryableTransactionError, isUniqueViolation, type Transaction } from './db/transaction.js';
export { DomainError, isDomainError, notFound } from './errors/domain-error.js';
export { type FaultPoint, faultPoint } from './faults/faults.js';
export { type HealthCheck, natsCheck, postgresCheck, rpcCheck, withTimeout } from './health/checks.js';
export {
  BUSY_RETRY_AFTER_SECONDS,
  type Dependency,
  DependencyMonitor,
  type DependencyMonitorOptions,
  databaseBusy,
  isPoolSaturated,
  isPostgresConnectionError,
  OUTAGE_RETRY_AFTER_SECONDS,
  unavailable,
} from './health/dependency-monitor.js';
export { evaluateReadiness, HealthServer, type ReadinessReport } from './health/health-server.js';
export { newId } from './ids/ids.js';
export { currentTrace, runWithTrace, type TraceContext } from './logging/context.js';
export { createLogger, type Logger, type LoggerOptions } from './logging/logger.js';
export { connectNats, type NatsConnection } from './messaging/connection.js';
export { DeadLetterQueue, type DlqEntry, dlqSubject, publishDeadLetter } from './messaging/dead-letters.js';
export { DlqForwarder } from './messaging/dlq-forwarder.js';
export { headersToRecord, readEventMeta, toNatsHeaders } from './messaging/envelope.js';
export {
  type EventContext,
  type EventContextOf,
  type EventDelivery,
  type EventHandler,
  type HandleOutcome,
  InboxConsumer,
  type InboxConsumerOptions,
  type OwnTransactionEventContext,
} from './messaging/inbox-consumer.js';
export { type AppendOptions, Outbox } from './messaging/outbox.js';
export { OutboxRelay, type OutboxRelayOptions, type RelayBatchResult } from './messaging/outbox-relay.js';
export { DEFAULT_RETRY_SCHEDULE_MS, retryDelay } from './messaging/retry-schedule.js';
export { RpcClient, type RpcClientOptions } from './messaging/rpc-client.js';
export {
  type RpcHandler,
  type RpcHandlerContext,
  RpcServer,
  type RpcServerOptions,
  zodIssues,
} from './messaging/rpc-server.js';
export {
  ADVISORIES_STREAM,
  consumerConfig,
  DLQ_FORWARDER_DURABLE,
  type ProvisionReport,
  provisionTopology,
  streamConfig,
  TopologyError,
  type TopologyOptions,
  verifyTopology,
} from './messaging/topology.js';
export { createMetrics, type Metrics } from './metrics/metrics.js';
export { Namespace } from './namespace/namespace.js';
export { EventsHandler, RpcHandler as RpcMethod } from './nest/decorators.js';
export { FerryTransport, PassThroughRpcFilter, PinoNestLogger } from './nest/ferry-transport.js';
export {
  BLOB_STORE,
  CONFIG,
  LOGGER,
  METRICS,
  PlatformModule,
  type PlatformProviders,
  RPC_CLIENT,
} from './nest/platform-module.js';
export { decodeCursor, encodeCursor, isIdCursor, toPage } from './pagination/keyset-cursor.js';
export { PLATFORM_MIGRATIONS } from './platform-migrations.js';
export { Housekeeper } from './service/housekeeper.js';
export { onParentExit } from './service/parent-watch.js';
export { Periodic, type PeriodicOptions } from './service/periodic.js';
export { migrationSources, runService, ServiceConfig, type ServiceDefinition } from './service/run-service.js';
