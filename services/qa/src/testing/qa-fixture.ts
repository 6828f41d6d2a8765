import 'reflect-metadata';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Actor, EventDefinition, EventPayload, episodeEvents } from '@ferry/contracts';
import {
  BlobStorageError,
  createMetrics,
  inTransaction,
  LocalBlobStore,
  type Logger,
  type Metrics,
  newId,
  Outbox,
  PlatformModule,
  RpcClient,
} from '@ferry/platform';
import { silentLogger, TestInfra } from '@ferry/platform/testing';
import { Module, type Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { type Kysely, sql, type Transaction } from 'kysely';
import { v7 as uuidv7 } from 'uuid';
import { BulkRunRepository } from '../bulk/bulk-run.repository.js';
import { BulkRunService } from '../bulk/bulk-run.service.js';
import { BulkRunWorker } from '../bulk/bulk-run.worker.js';
import { writeRecording } from '../checks/testing/mcap-corpus.js';
import type { QaDB } from '../database.js';
import { QaEpisodeHandlers } from '../episodes/qa-episode.handlers.js';
import { QaEpisodeRepository } from '../episodes/qa-episode.repository.js';
import { QaEpisodeService } from '../episodes/qa-episode.service.js';
import { QaConfig } from '../manifest.js';
import { QA_MIGRATIONS } from '../migrations.js';
import { ProfileRepository } from '../profiles/profile.repository.js';
import { ProfileService } from '../profiles/profile.service.js';
import { QA_PROVIDERS } from '../qa.module.js';
import { ClaimSweeper } from '../runs/claim-sweeper.js';
import { QaRunRepository } from '../runs/qa-run.repository.js';
import { QaRunner } from '../runs/qa-runner.js';

/** The background loops a test starts itself (a fixture replica), so nothing polls behind its back. */
const BACKGROUND: readonly unknown[] = [BulkRunWorker, ClaimSweeper];

/**
 * The QA services, resolved through Nest's DI as the service wires them, on a migrated test schema of
 * their own, with a local blob store holding one real recording. No NATS: commands run in a transaction
 * the way the RPC server runs them. Bulk-run workers are built on demand (`worker()`), one per
 * simulated replica, and are not started unless the test starts them.
 */
export async function qaFixture(overrides: Partial<Record<keyof QaConfig, string | number>> = {}) {
  const infra = await TestInfra.create({ services: [{ name: 'qa', migrations: QA_MIGRATIONS }], provision: false });
  const { db } = infra.database<QaDB>('qa', { max: 20 });
  const logger = silentLogger();
  const blobDir = await mkdtemp(path.join(tmpdir(), 'ferry-qa-fixture-'));
  const blobStore = new PacedBlobStore({ root: blobDir });
  const config = QaConfig.parse({
    HEALTH_PORT: 0,
    QA_CLAIM_LEASE_MS: 3_000,
    BULK_POLL_MS: 50,
    BULK_STALE_MS: 4_000, // above the lease, as the config requires
    QA_WORKER_ID: 'fixture-replica',
    ...overrides,
  });

  const metrics = createMetrics('qa-fixture');
  const bytes = await writeRecording();
  const mcap = {
    object_key: `fixtures/${newId()}.mcap`,
    size_bytes: bytes.byteLength,
    sha256: createHash('sha256').update(bytes).digest('hex'),
  };
  await blobStore.put(mcap.object_key, Readable.from([Buffer.from(bytes)]));

  @Module({ providers: QA_PROVIDERS.filter((p) => !BACKGROUND.includes(p)) })
  class FixtureModule {}
  const app = await NestFactory.createApplicationContext(
    {
      module: class FixtureRoot {},
      imports: [
        PlatformModule.forRoot({
          db,
          outbox: new Outbox(infra.ns),
          ns: infra.ns,
          logger,
          config,
          metrics,
          rpcClient: new RpcClient({ nc: infra.nc, ns: infra.ns, logger }),
          blobStore,
        }),
        FixtureModule,
      ],
    },
    { logger: false },
  );
  const get = <T>(type: Type<T>) => app.get(type);
  const workers: BulkRunWorker[] = [];

  const fixture = {
    infra,
    db: db as Kysely<QaDB>,
    config,
    metrics,
    outbox: get(Outbox),
    runner: get(QaRunner),
    episodes: get(QaEpisodeService),
    bulkRuns: get(BulkRunRepository),
    bulk: get(BulkRunService),
    profileRepository: get(ProfileRepository),
    profiles: get(ProfileService),
    /** Runs a command the way the RPC server does: one transaction. */
    tx<T>(fn: (trx: Transaction<QaDB>) => Promise<T>): Promise<T> {
      return inTransaction(db, fn);
    },
    /**
     * The bulk-run worker of one more replica (not started: call `poll()`, or `onApplicationBootstrap()`
     * to run its loop), checking through that replica's own runner (its settings: worker id, time limits);
     * stopped by cleanup().
     */
    worker(options: Partial<QaConfig> = {}): BulkRunWorker {
      const worker = new BulkRunWorker(
        db,
        fixture.bulkRuns,
        fixture.bulk,
        fixture.replica(options).runner,
        fixture.outbox,
        { ...config, ...options },
        logger,
      );
      workers.push(worker);
      return worker;
    },
    /** The event handlers as the consumers call them (auto QA: `onEpisodeCreated`). */
    handlers: new QaEpisodeHandlers(db, get(QaEpisodeRepository), get(ProfileRepository), get(QaRunner)),
    /**
     * The runner of one more replica (its own settings, worker id and metrics registry), sharing the database and the
     * blob store, with that replica's event handlers and manual runs (QaEpisodeService) on top of it.
     */
    replica(options: Partial<QaConfig> = {}) {
      const replicaMetrics = createMetrics('qa-replica');
      const replicaConfig = { ...config, ...options };
      const runner = new QaRunner(
        db,
        get(QaEpisodeRepository),
        get(QaRunRepository),
        get(ProfileRepository),
        fixture.outbox,
        blobStore,
        replicaConfig,
        logger,
        replicaMetrics,
      );
      const handlers = new QaEpisodeHandlers(db, get(QaEpisodeRepository), get(ProfileRepository), runner);
      const episodes = new QaEpisodeService(db, get(QaEpisodeRepository), get(QaRunRepository), runner, replicaConfig);
      return { runner, metrics: replicaMetrics, handlers, episodes };
    },
    /** The `episode.created` payload production would publish for an episode of QA's projection. */
    async createdEvent(id: string): Promise<EventPayload<typeof episodeEvents.created>> {
      const e = await db.selectFrom('episodes').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
      return {
        episode: {
          id: e.id,
          organization_id: e.organization_id,
          task_id: e.task_id,
          batch_id: e.batch_id,
          order_id: e.order_id,
          scene_id: e.scene_id,
          workstation_id: uuidv7(),
          device_id: e.device_id,
          upload_id: e.upload_id,
          files: { mcap: e.mcap, sidecar: e.sidecar },
          recording: null,
          qa_status: 'pending_qa',
          labels: e.labels,
          created_at: e.episode_created_at.toISOString(),
          updated_at: e.episode_created_at.toISOString(),
        },
      };
    },
    /** The lapsed-claim sweeper of one more replica (not started: call `sweep()` or `redrive()`). */
    sweeper(options: { config?: Partial<QaConfig>; logger?: Logger; metrics?: Metrics } = {}): ClaimSweeper {
      return new ClaimSweeper(
        db,
        get(QaEpisodeRepository),
        fixture.runner,
        { ...config, ...options.config },
        options.logger ?? logger,
        options.metrics ?? createMetrics('qa-sweeper'),
      );
    },
    /** `n` approved episodes of `org` in QA's projection, all pointing at the fixture's recording. */
    async seed(n: number, options: { org?: string; status?: string } = {}): Promise<string> {
      const org = options.org ?? uuidv7();
      await sql`
        insert into episodes (id, organization_id, task_id, order_id, scene_id, batch_id, device_id, upload_id, mcap,
                              episode_created_at, qa_status)
        select gen_random_uuid(), ${org}::uuid, gen_random_uuid(), gen_random_uuid(), gen_random_uuid(),
               gen_random_uuid(), 'arm-1', gen_random_uuid(), ${JSON.stringify(mcap)}::jsonb,
               now() - (i || ' seconds')::interval, ${options.status ?? 'approved'}
        from generate_series(1, ${n}) as i`.execute(db);
      return org;
    },
    /**
     * Makes every read of the blob store take at least `ms` from now on, so a run lasts as long as a test
     * needs it to (a run's length then depends on its item count, not on how fast this machine is).
     */
    paceReads(ms: number): void {
      blobStore.readDelayMs = ms;
    },
    /**
     * Holds every read of the blob store from now on until the returned function is called, so a check stays in
     * flight, holding its claim, while the test acts.
     */
    holdReads(): () => void {
      return blobStore.hold();
    },
    /**
     * From now on (until called with false) every read of the blob store opens a stream that never yields a byte,
     * as storage that stopped answering mid-read; returns the streams opened so far, to see they were closed.
     */
    hangReads(on = true): Readable[] {
      blobStore.hanging = on;
      return blobStore.hung;
    },
    /**
     * From now on (until called with false) every read of the blob store fails as a store that is down does
     * (`BlobStorageError`): a check attempts the episode, releases it and records nothing.
     */
    failReads(on = true): void {
      blobStore.failing = on;
    },
    /** The database's clock, which QA stamps claims, runs and requests with. */
    async now(): Promise<Date> {
      return (await sql<{ now: Date }>`select clock_timestamp() as now`.execute(db)).rows[0]!.now;
    },
    /** The ids of an organization's episodes, oldest first. */
    async episodeIds(org: string): Promise<string[]> {
      const rows = await db
        .selectFrom('episodes')
        .select('id')
        .where('organization_id', '=', org)
        .orderBy('episode_created_at')
        .orderBy('id')
        .execute();
      return rows.map((r) => r.id);
    },
    /** The `event`s QA wrote to its outbox about episode `id`, oldest first, parsed by their contract. */
    async outboxEvents<E extends EventDefinition>(event: E, id: string): Promise<EventPayload<E>[]> {
      const rows = await db
        .selectFrom('outbox')
        .select('payload')
        .where('event_type', '=', event.type)
        .where(sql<boolean>`payload->>'episode_id' = ${id}`)
        .orderBy('created_at')
        .orderBy('id')
        .execute();
      return rows.map((r) => event.schema.parse(r.payload) as EventPayload<E>);
    },
    /** The Postgres backend of an open transaction (to see who waits on its locks). */
    async backendPid(trx: Transaction<QaDB>): Promise<number> {
      return (await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(trx)).rows[0]!.pid;
    },
    /** True while some session waits on a lock that backend `pid` holds. */
    async blocking(pid: number): Promise<boolean> {
      const { rows } = await sql<{ n: number }>`
        select count(*)::int as n from pg_stat_activity where ${pid} = any(pg_blocking_pids(pid))`.execute(db);
      return rows[0]!.n > 0;
    },
    async cleanup() {
      await Promise.allSettled(workers.map((w) => w.onModuleDestroy()));
      await app.close();
      await infra.cleanup();
      await rm(blobDir, { recursive: true, force: true });
    },
  };
  return fixture;
}

/** A local blob store whose reads can be held back (paced, or held until released), to pace a run, or never answer. */
class PacedBlobStore extends LocalBlobStore {
  readDelayMs = 0;
  hanging = false;
  failing = false;
  readonly hung: Readable[] = [];
  private held?: Promise<void>;

  hold(): () => void {
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    this.held = held;
    return () => {
      if (this.held === held) this.held = undefined;
      release();
    };
  }

  override async read(...args: Parameters<LocalBlobStore['read']>): ReturnType<LocalBlobStore['read']> {
    if (this.failing) throw new BlobStorageError('read', args[0], { cause: new Error('the store is down (test)') });
    if (this.hanging) {
      const stream = new Readable({ read() {} });
      this.hung.push(stream);
      return stream;
    }
    if (this.held) await this.held;
    if (this.readDelayMs > 0) await sleep(this.readDelayMs);
    return super.read(...args);
  }
}

export type QaFixture = Awaited<ReturnType<typeof qaFixture>>;

export function actorOf(org = uuidv7(), role: Actor['role'] = 'operator'): Actor {
  return { kind: 'user', sub: `user-${org.slice(-4)}`, org, role };
}
