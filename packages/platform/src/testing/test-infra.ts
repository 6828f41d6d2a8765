import { randomBytes } from 'node:crypto';
import type { EventDefinition } from '@ferry/contracts';
import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';
import { createDatabase, type Database } from '../db/database.js';
import { type MigrationSource, migrate } from '../db/migrator.js';
import { newId } from '../ids/ids.js';
import type { Logger } from '../logging/logger.js';
import { toNatsHeaders } from '../messaging/envelope.js';
import { envelopeOf } from '../messaging/outbox-relay.js';
import { provisionTopology } from '../messaging/topology.js';
import { Namespace } from '../namespace/namespace.js';
import { PLATFORM_MIGRATIONS } from '../platform-migrations.js';
import { silentLogger } from './loggers.js';

export function testDatabaseUrl(): string {
  return process.env.TEST_DATABASE_URL ?? process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
}

export function testNatsUrl(): string {
  return process.env.TEST_NATS_URL ?? process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
}

/** `t` + 10 random base-36 characters: short enough for stream names, unique per test file. */
export function uniqueNamespace(): string {
  return `t${BigInt(`0x${randomBytes(8).toString('hex')}`)
    .toString(36)
    .slice(0, 10)}`;
}

/** Drops every schema of namespace `prefix` (`<prefix>_production`, …) from the database at `databaseUrl`. */
export async function dropNamespaceSchemas(databaseUrl: string, prefix: string): Promise<void> {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 1 });
  try {
    const { rows } = await pool.query<{ nspname: string }>(`select nspname from pg_namespace where nspname like $1`, [
      `${prefix}\\_%`,
    ]);
    for (const { nspname } of rows) await pool.query(`drop schema if exists "${nspname}" cascade`);
  } finally {
    await pool.end();
  }
}

export interface TestInfraOptions {
  /** Service schemas to create and migrate (platform messaging tables first). */
  services?: { name: string; migrations?: MigrationSource }[];
  /** Create every stream and consumer of the namespace. Default true. */
  provision?: boolean;
  /** Servers other than the shared ones (a test that stops its own servers). Default testDatabaseUrl()/testNatsUrl(). */
  databaseUrl?: string;
  natsUrl?: string;
}

/** Real Postgres and NATS for one test file, under a namespace of its own; `cleanup()` removes it all. */
export class TestInfra {
  private readonly databases: Database<any>[] = [];

  private constructor(
    readonly ns: Namespace,
    readonly nc: NatsConnection,
    readonly js: JetStreamClient,
    readonly jsm: JetStreamManager,
    readonly databaseUrl: string,
    readonly natsUrl: string,
    readonly logger: Logger,
  ) {}

  static async create(options: TestInfraOptions = {}): Promise<TestInfra> {
    const ns = new Namespace(uniqueNamespace());
    const natsUrl = options.natsUrl ?? testNatsUrl();
    const nc = await connect({ servers: natsUrl, name: `test-${ns.prefix}`, maxReconnectAttempts: -1 });
    const jsm = await jetstreamManager(nc);
    const infra = new TestInfra(
      ns,
      nc,
      jetstream(nc),
      jsm,
      options.databaseUrl ?? testDatabaseUrl(),
      natsUrl,
      silentLogger(),
    );
    if (options.provision ?? true) await provisionTopology(jsm, ns);
    for (const s of options.services ?? []) await infra.migrate(s.name, s.migrations);
    return infra;
  }

  schema(service: string): string {
    return this.ns.schema(service);
  }

  async migrate(service: string, migrations?: MigrationSource): Promise<void> {
    const pool = new pg.Pool({ connectionString: this.databaseUrl, max: 1 });
    try {
      await migrate(pool, this.schema(service), migrations ? [PLATFORM_MIGRATIONS, migrations] : [PLATFORM_MIGRATIONS]);
    } finally {
      await pool.end();
    }
  }

  /** A pool + kysely on the service's schema; closed by cleanup(). */
  database<DB = any>(service: string, options: { max?: number } = {}): Database<DB> {
    const db = createDatabase<DB>({
      url: this.databaseUrl,
      schema: this.schema(service),
      max: options.max ?? 5,
      applicationName: `test-${this.ns.prefix}`,
      logger: this.logger,
    });
    this.databases.push(db);
    return db;
  }

  /**
   * Publishes one event on this namespace exactly as a service's outbox relay does (the same envelope,
   * Nats-Msg-Id = the event id), for tests that play a service without running it. `aggregateId` is the
   * last subject token of an event with `perAggregateSubject`. Answers the event id and stream sequence.
   */
  async publishEvent(
    def: EventDefinition,
    payload: unknown,
    options: { id?: string; aggregateId?: string; correlationId?: string } = {},
  ): Promise<{ id: string; seq: number }> {
    const id = options.id ?? newId();
    const subject = options.aggregateId ? `${def.type}.${options.aggregateId}` : def.type;
    const envelope = envelopeOf({
      id,
      event_type: def.type,
      created_at: new Date(),
      correlation_id: options.correlationId ?? `test-${id}`,
      causation_id: null,
    });
    const ack = await this.js.publish(this.ns.subject(subject), JSON.stringify(payload), {
      msgID: id,
      headers: toNatsHeaders(envelope),
    });
    return { id, seq: ack.seq };
  }

  /** Environment for a child process (a service under test) on this namespace. */
  env(extra: Record<string, string> = {}): Record<string, string> {
    return {
      DATABASE_URL: this.databaseUrl,
      NATS_URL: this.natsUrl,
      FERRY_NAMESPACE: this.ns.prefix,
      LOG_LEVEL: 'info',
      DB_POOL_MAX: '4',
      ...extra,
    };
  }

  async cleanup(): Promise<void> {
    await Promise.allSettled(this.databases.map((d) => d.close()));
    await dropNamespaceSchemas(this.databaseUrl, this.ns.prefix);
    for await (const name of this.jsm.streams.names()) {
      if (name.startsWith(`${this.ns.prefix}_`)) await this.jsm.streams.delete(name).catch(() => undefined);
    }
    await this.nc.close();
  }
}
