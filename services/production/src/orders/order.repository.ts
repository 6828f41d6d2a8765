import type { Order, OrderListQuery, OrderPriority, OrderStatus } from '@ferry/contracts';
import { isUniqueViolation } from '@ferry/platform';
import { Injectable } from '@nestjs/common';
import { type Kysely, type Selectable, sql, type Updateable } from 'kysely';
import type { OrdersTable, ProductionDB } from '../database.js';

type Db = Kysely<ProductionDB>;
export type OrderRow = Selectable<OrdersTable>;
export interface OrderCounts {
  task_count: number;
  completed_count: number;
}

export class OrderNameTaken extends Error {}

const NAME_KEY = 'orders_org_name_live_key';

export function toOrder(row: OrderRow, counts: OrderCounts): Order {
  return {
    id: row.id,
    organization_id: row.organization_id,
    scene_id: row.scene_id,
    name: row.name,
    target_count: row.target_count,
    priority: row.priority as OrderPriority,
    status: row.status as OrderStatus,
    deadline: row.deadline?.toISOString() ?? null,
    metadata: row.metadata,
    task_count: counts.task_count,
    completed_count: counts.completed_count,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
}

export interface NewOrder {
  id: string;
  organization_id: string;
  scene_id: string;
  name: string;
  target_count: number;
  priority: OrderPriority;
  deadline: string | null;
  metadata: Record<string, unknown>;
}

@Injectable()
export class OrderRepository {
  async insert(db: Db, order: NewOrder): Promise<OrderRow> {
    try {
      return await db
        .insertInto('orders')
        .values({ ...order, metadata: JSON.stringify(order.metadata), status: 'created' })
        .returningAll()
        .executeTakeFirstOrThrow();
    } catch (err) {
      if (isUniqueViolation(err, NAME_KEY)) throw new OrderNameTaken();
      throw err;
    }
  }

  async lockById(db: Db, id: string): Promise<OrderRow> {
    return db.selectFrom('orders').selectAll().where('id', '=', id).forUpdate().executeTakeFirstOrThrow();
  }

  async find(db: Db, org: string, id: string, options: { lock?: 'update' } = {}): Promise<OrderRow | undefined> {
    let q = db
      .selectFrom('orders')
      .selectAll()
      .where('id', '=', id)
      .where('organization_id', '=', org)
      .where('deleted_at', 'is', null);
    if (options.lock === 'update') q = q.forUpdate();
    return q.executeTakeFirst();
  }

  async list(db: Db, org: string, query: OrderListQuery, after?: string): Promise<(OrderRow & OrderCounts)[]> {
    let q = db
      .selectFrom('orders')
      .selectAll()
      .select([
        sql<number>`(select count(*) from tasks t where t.order_id = orders.id and t.deleted_at is null)::int`.as(
          'task_count',
        ),
        sql<number>`(select count(*) from tasks t where t.order_id = orders.id and t.status = 'completed'
                      and t.deleted_at is null)::int`.as('completed_count'),
      ])
      .where('organization_id', '=', org)
      .where('deleted_at', 'is', null);
    if (query.status) q = q.where('status', 'in', query.status);
    if (query.priority) q = q.where('priority', 'in', query.priority);
    if (query.scene_id) q = q.where('scene_id', '=', query.scene_id);
    if (query.q) q = q.where('name', 'ilike', `%${query.q.replace(/[\\%_]/g, '\\$&')}%`);
    if (query.created_from) q = q.where('created_at', '>=', new Date(query.created_from));
    if (query.created_to) q = q.where('created_at', '<', new Date(query.created_to));
    if (after) q = q.where('id', '<', after);
    return q
      .orderBy('id', 'desc')
      .limit(query.limit + 1)
      .execute();
  }

  async counts(db: Db, orderId: string): Promise<OrderCounts> {
    const row = await db
      .selectFrom('tasks')
      .select([
        (eb) => eb.fn.countAll<string>().as('task_count'),
        sql<string>`count(*) filter (where status = 'completed')`.as('completed_count'),
      ])
      .where('order_id', '=', orderId)
      .where('deleted_at', 'is', null)
      .executeTakeFirstOrThrow();
    return { task_count: Number(row.task_count), completed_count: Number(row.completed_count) };
  }

  /** Live tasks and episodes that still refer to the order (batches are counted by BatchRepository). */
  async references(db: Db, orderId: string): Promise<{ tasks: number; episodes: number }> {
    const row = await db
      .selectNoFrom([
        sql<number>`(select count(*) from tasks where order_id = ${orderId} and deleted_at is null)::int`.as('tasks'),
        sql<number>`(select count(*) from episodes where order_id = ${orderId} and deleted_at is null)::int`.as(
          'episodes',
        ),
      ])
      .executeTakeFirstOrThrow();
    return { tasks: row.tasks, episodes: row.episodes };
  }

  async update(db: Db, id: string, patch: Updateable<OrdersTable>): Promise<OrderRow> {
    try {
      return await db
        .updateTable('orders')
        .set({ ...patch, updated_at: new Date() })
        .where('id', '=', id)
        .returningAll()
        .executeTakeFirstOrThrow();
    } catch (err) {
      if (isUniqueViolation(err, NAME_KEY)) throw new OrderNameTaken();
      throw err;
    }
  }

  /** Compare-and-set on status: changes nothing unless the order is still `from`. */
  async transition(db: Db, id: string, from: OrderStatus, to: OrderStatus): Promise<OrderRow | undefined> {
    return db
      .updateTable('orders')
      .set({ status: to, updated_at: new Date() })
      .where('id', '=', id)
      .where('status', '=', from)
      .where('deleted_at', 'is', null)
      .returningAll()
      .executeTakeFirst();
  }

  async softDelete(db: Db, id: string): Promise<OrderRow> {
    return db
      .updateTable('orders')
      .set({ deleted_at: new Date(), updated_at: new Date() })
      .where('id', '=', id)
      .where('deleted_at', 'is', null)
      .returningAll()
      .executeTakeFirstOrThrow();
  }
}
