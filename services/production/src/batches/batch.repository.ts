import type { Batch, BatchListFilter, BatchStatus, TaskCounts } from '@ferry/contracts';
import { Injectable } from '@nestjs/common';
import type { Kysely, Selectable, Updateable } from 'kysely';
import type { BatchesTable, ProductionDB } from '../database.js';
import { EMPTY_COUNTS } from '../tasks/task.repository.js';

type Db = Kysely<ProductionDB>;
export type BatchRow = Selectable<BatchesTable>;

export function toBatch(row: BatchRow, counts: TaskCounts = EMPTY_COUNTS): Batch {
  return {
    id: row.id,
    organization_id: row.organization_id,
    order_id: row.order_id,
    workstation_id: row.workstation_id,
    name: row.name,
    notes: row.notes,
    status: row.status as BatchStatus,
    episode_count: row.episode_count,
    task_counts: counts,
    metadata: row.metadata,
    started_at: row.started_at?.toISOString() ?? null,
    ended_at: row.ended_at?.toISOString() ?? null,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
}

export interface NewBatch {
  id: string;
  organization_id: string;
  order_id: string;
  workstation_id: string;
  name: string;
  notes: string | null;
  metadata: Record<string, unknown>;
}

@Injectable()
export class BatchRepository {
  async insert(db: Db, batch: NewBatch): Promise<BatchRow> {
    return db
      .insertInto('batches')
      .values({ ...batch, metadata: JSON.stringify(batch.metadata) })
      .returningAll()
      .executeTakeFirstOrThrow();
  }

  async find(db: Db, org: string, id: string, options: { lock?: boolean } = {}): Promise<BatchRow | undefined> {
    let q = db
      .selectFrom('batches')
      .selectAll()
      .where('id', '=', id)
      .where('organization_id', '=', org)
      .where('deleted_at', 'is', null);
    if (options.lock) q = q.forUpdate();
    return q.executeTakeFirst();
  }

  async lockById(db: Db, id: string): Promise<BatchRow> {
    return db.selectFrom('batches').selectAll().where('id', '=', id).forUpdate().executeTakeFirstOrThrow();
  }

  async list(db: Db, org: string, filter: BatchListFilter, after?: string): Promise<BatchRow[]> {
    let q = db.selectFrom('batches').selectAll().where('organization_id', '=', org).where('deleted_at', 'is', null);
    if (filter.order_id) q = q.where('order_id', '=', filter.order_id);
    if (filter.workstation_id) q = q.where('workstation_id', '=', filter.workstation_id);
    if (filter.status) q = q.where('status', 'in', filter.status);
    if (after) q = q.where('id', '<', after);
    return q
      .orderBy('id', 'desc')
      .limit(filter.limit + 1)
      .execute();
  }

  /** The newest pending or active batch of (order, workstation): where new tasks go (Keystone's legacy path). */
  async findOpen(db: Db, orderId: string, workstationId: string): Promise<BatchRow | undefined> {
    return db
      .selectFrom('batches')
      .selectAll()
      .where('order_id', '=', orderId)
      .where('workstation_id', '=', workstationId)
      .where('status', 'in', ['pending', 'active'])
      .where('deleted_at', 'is', null)
      .orderBy('id', 'desc')
      .limit(1)
      .forUpdate()
      .executeTakeFirst();
  }

  /** Pending and active batches of an order, locked: what order completion finalizes. */
  async openForOrder(db: Db, orderId: string): Promise<BatchRow[]> {
    return db
      .selectFrom('batches')
      .selectAll()
      .where('order_id', '=', orderId)
      .where('status', 'in', ['pending', 'active'])
      .where('deleted_at', 'is', null)
      .orderBy('id')
      .forUpdate()
      .execute();
  }

  /** Compare-and-set on status. */
  async transition(db: Db, id: string, from: readonly BatchStatus[], to: BatchStatus): Promise<BatchRow | undefined> {
    const now = new Date();
    return db
      .updateTable('batches')
      .set((eb) => ({
        status: to,
        updated_at: now,
        ...(to === 'active' ? { started_at: eb.fn.coalesce('started_at', eb.val(now)) } : {}),
        ...(to === 'completed' || to === 'cancelled' || to === 'recalled'
          ? { ended_at: eb.fn.coalesce('ended_at', eb.val(now)) }
          : {}),
      }))
      .where('id', '=', id)
      .where('status', 'in', [...from])
      .where('deleted_at', 'is', null)
      .returningAll()
      .executeTakeFirst();
  }

  async update(db: Db, id: string, patch: Updateable<BatchesTable>): Promise<BatchRow> {
    return db
      .updateTable('batches')
      .set({ ...patch, updated_at: new Date() })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirstOrThrow();
  }

  async incrementEpisodeCount(db: Db, id: string): Promise<void> {
    await db
      .updateTable('batches')
      .set((eb) => ({ episode_count: eb('episode_count', '+', 1), updated_at: new Date() }))
      .where('id', '=', id)
      .execute();
  }

  async softDelete(db: Db, id: string): Promise<BatchRow> {
    return db
      .updateTable('batches')
      .set({ deleted_at: new Date(), updated_at: new Date() })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirstOrThrow();
  }

  async hardDeleteEmpty(db: Db, id: string): Promise<void> {
    // Only ever a batch created earlier in the same transaction that ended up with no task.
    await db.deleteFrom('batches').where('id', '=', id).execute();
  }

  async liveCountsForOrder(
    db: Db,
    orderId: string,
  ): Promise<{ batches: number; sample: { id: string; name: string }[] }> {
    const sample = await db
      .selectFrom('batches')
      .select(['id', 'name'])
      .where('order_id', '=', orderId)
      .where('deleted_at', 'is', null)
      .orderBy('id')
      .limit(10)
      .execute();
    const { n } = await db
      .selectFrom('batches')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('order_id', '=', orderId)
      .where('deleted_at', 'is', null)
      .executeTakeFirstOrThrow();
    return { batches: Number(n), sample };
  }
}
