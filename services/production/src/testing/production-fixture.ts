import 'reflect-metadata';
import type { Actor } from '@ferry/contracts';
import { createMetrics, inTransaction, Outbox, PlatformModule, RpcClient } from '@ferry/platform';
import { silentLogger, TestInfra } from '@ferry/platform/testing';
import { Module, type Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { Kysely, Transaction } from 'kysely';
import { v7 as uuidv7 } from 'uuid';
import { BatchService } from '../batches/batch.service.js';
import type { ProductionDB } from '../database.js';
import { EpisodeService } from '../episodes/episode.service.js';
import { PRODUCTION_MIGRATIONS } from '../migrations.js';
import { OrderService } from '../orders/order.service.js';
import { PRODUCTION_PROVIDERS } from '../production.module.js';
import { SceneService } from '../scenes/scene.service.js';
import { TaskService } from '../tasks/task.service.js';
import { WorkstationService } from '../workstations/workstation.service.js';

/**
 * The production services, resolved through Nest's DI exactly as the service wires them, on a migrated
 * test schema of their own. No NATS: commands run in a transaction the way the RPC server runs them.
 */
export async function productionFixture() {
  const infra = await TestInfra.create({
    services: [{ name: 'production', migrations: PRODUCTION_MIGRATIONS }],
    provision: false,
  });
  const { db } = infra.database<ProductionDB>('production', { max: 30 });
  const logger = silentLogger();

  @Module({ providers: PRODUCTION_PROVIDERS })
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
          config: {},
          metrics: createMetrics('production-fixture'),
          rpcClient: new RpcClient({ nc: infra.nc, ns: infra.ns, logger }),
        }),
        FixtureModule,
      ],
    },
    { logger: false },
  );
  const get = <T>(type: Type<T>) => app.get(type);

  const fixture = {
    infra,
    db: db as Kysely<ProductionDB>,
    scenes: get(SceneService),
    orders: get(OrderService),
    workstations: get(WorkstationService),
    batches: get(BatchService),
    tasks: get(TaskService),
    episodes: get(EpisodeService),
    /** Runs a command the way the RPC server does: one transaction. */
    tx<T>(fn: (trx: Transaction<ProductionDB>) => Promise<T>): Promise<T> {
      return inTransaction(db, fn);
    },
    async outboxEvents(type?: string): Promise<{ event_type: string; payload: any }[]> {
      let q = db.selectFrom('outbox').select(['event_type', 'payload']).orderBy('created_at').orderBy('id');
      if (type) q = q.where('event_type', '=', type);
      return q.execute() as Promise<{ event_type: string; payload: any }[]>;
    },
    /** An organization with a scene, an order and a workstation, ready for batches and tasks. */
    async world(options: { target?: number; device?: string } = {}) {
      const actor = actorOf();
      const scene = await fixture.tx((trx) => fixture.scenes.create(actor, { name: `scene-${uuidv7()}` }, trx));
      const order = await fixture.tx((trx) =>
        fixture.orders.create(
          actor,
          {
            scene_id: scene.id,
            name: `order-${uuidv7()}`,
            target_count: options.target ?? 10,
            priority: 'normal',
            metadata: {},
          },
          trx,
        ),
      );
      const device = options.device ?? `dev-${uuidv7().slice(-8)}`;
      const workstation = await fixture.tx((trx) =>
        fixture.workstations.create(
          actor,
          { device_id: device, collector_operator_id: `op-${device}`, metadata: {} },
          trx,
        ),
      );
      return { actor, scene, order, workstation, device };
    },
    async cleanup() {
      await app.close();
      await infra.cleanup();
    },
  };
  return fixture;
}

export type ProductionFixture = Awaited<ReturnType<typeof productionFixture>>;

export function actorOf(org = uuidv7(), role: Actor['role'] = 'operator'): Actor {
  return { kind: 'user', sub: `user-${org.slice(-4)}`, org, role };
}
