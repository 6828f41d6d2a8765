import type { Actor } from '@ferry/contracts';
import { inTransaction, Outbox } from '@ferry/platform';
import { TestInfra } from '@ferry/platform/testing';
import type { Kysely, Transaction } from 'kysely';
import { v7 as uuidv7 } from 'uuid';
import type { ProductionDB } from '../database.js';
import { PRODUCTION_MIGRATIONS } from '../manifest.js';
import { OrderRepository } from '../orders/order.repository.js';
import { OrderService } from '../orders/order.service.js';
import { SceneRepository } from '../scenes/scene.repository.js';
import { SceneService } from '../scenes/scene.service.js';

/** The production services wired by hand on a migrated test schema (no NATS needed). */
export async function productionFixture() {
  const infra = await TestInfra.create({
    services: [{ name: 'production', migrations: PRODUCTION_MIGRATIONS }],
    provision: false,
  });
  const { db } = infra.database<ProductionDB>('production', { max: 25 });
  const outbox = new Outbox(infra.ns);
  const sceneRepo = new SceneRepository();
  const scenes = new SceneService(db, sceneRepo, outbox);
  const orders = new OrderService(db, new OrderRepository(), sceneRepo, outbox);
  return {
    infra,
    db: db as Kysely<ProductionDB>,
    scenes,
    orders,
    /** Runs a command the way the RPC server does: one transaction. */
    tx<T>(fn: (trx: Transaction<ProductionDB>) => Promise<T>): Promise<T> {
      return inTransaction(db, fn);
    },
    async outboxEvents(type?: string): Promise<{ event_type: string; payload: any }[]> {
      let q = db.selectFrom('outbox').select(['event_type', 'payload']).orderBy('created_at').orderBy('id');
      if (type) q = q.where('event_type', '=', type);
      return q.execute();
    },
    cleanup: () => infra.cleanup(),
  };
}

export function actorOf(org = uuidv7(), role: Actor['role'] = 'operator'): Actor {
  return { kind: 'user', sub: `user-${org.slice(-4)}`, org, role };
}
