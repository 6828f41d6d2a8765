import {
  type Actor,
  type CreateOrderBody,
  canTransitionOrder,
  type Order,
  type OrderListQuery,
  type OrderStatus,
  orderEvents,
  type Page,
  type UpdateOrderBody,
} from '@ferry/contracts';
import { DomainError, decodeCursor, isIdCursor, newId, notFound, Outbox, toPage } from '@ferry/platform';
import { Injectable } from '@nestjs/common';
import { Kysely, type Transaction } from 'kysely';

import { BatchRepository } from '../batches/batch.repository.js';
import { BatchTransitions } from '../batches/batch.transitions.js';
import type { ProductionDB } from '../database.js';
import { SceneRepository } from '../scenes/scene.repository.js';
import { TaskTransitions } from '../tasks/task.transitions.js';
import { OrderNameTaken, OrderRepository, type OrderRow, toOrder } from './order.repository.js';

const nameTaken = (name: string) =>
  new DomainError('name_taken', `an order named "${name}" already exists in this organization`, {
    field: 'name',
    name,
  });

/** Orders: quota owners with a status graph (DESIGN §5). Commands run inside the caller's transaction. */
@Injectable()
export class OrderService {
  constructor(
    private readonly db: Kysely<ProductionDB>,
    private readonly orders: OrderRepository,
    private readonly scenes: SceneRepository,
    private readonly batches: BatchRepository,
    private readonly batchTransitions: BatchTransitions,
    private readonly taskTransitions: TaskTransitions,
    private readonly outbox: Outbox,
  ) {}

  async view(db: Kysely<ProductionDB>, row: OrderRow): Promise<Order> {
    return toOrder(row, await this.orders.counts(db, row.id));
  }

  /**
   * Locks an order of the organization for a change (orders come first in the lock order); another
   * organization's is `not_found`. Whether that is a 404 (the order named in the path) or a 422 (named
   * in a request body) is the gateway's call: it knows where the id came from.
   */
  async lock(trx: Transaction<ProductionDB>, actor: Actor, id: string): Promise<OrderRow> {
    const row = await this.orders.find(trx, actor.org, id, { lock: 'update' });
    if (!row) throw notFound('Order', id);
    return row;
  }

  async create(actor: Actor, body: CreateOrderBody, trx: Transaction<ProductionDB>): Promise<Order> {
    // Share-lock the scene: a concurrent scene delete waits for us and then sees this order.
    const scene = await this.scenes.find(trx, actor.org, body.scene_id, { lock: 'share' });
    if (!scene) throw notFound('Scene', body.scene_id);
    const row = await this.orders
      .insert(trx, {
        id: newId(),
        organization_id: actor.org,
        scene_id: scene.id,
        name: body.name,
        target_count: body.target_count,
        priority: body.priority,
        deadline: body.deadline ?? null,
        metadata: body.metadata,
      })
      .catch((err) => {
        throw err instanceof OrderNameTaken ? nameTaken(body.name) : err;
      });
    const order = toOrder(row, { task_count: 0, completed_count: 0 });
    await this.outbox.append(trx, orderEvents.created, { order }, { aggregateId: order.id });
    return order;
  }

  async get(actor: Actor, id: string): Promise<Order> {
    const row = await this.orders.find(this.db, actor.org, id);
    if (!row) throw notFound('Order', id);
    return this.view(this.db, row);
  }

  async list(actor: Actor, query: OrderListQuery): Promise<Page<Order>> {
    const after = query.cursor ? decodeCursor(query.cursor, isIdCursor).id : undefined;
    const rows = await this.orders.list(this.db, actor.org, query, after);
    return toPage(
      rows,
      query.limit,
      (r) => toOrder(r, r),
      (r) => ({ id: r.id }),
    );
  }

  async update(actor: Actor, id: string, patch: UpdateOrderBody, trx: Transaction<ProductionDB>): Promise<Order> {
    let row = await this.lock(trx, actor, id);
    const { status, ...attributes } = patch;
    const counts = await this.orders.counts(trx, id);
    if (attributes.target_count !== undefined && attributes.target_count < counts.completed_count) {
      throw new DomainError(
        'invalid_state',
        `target_count ${attributes.target_count} is below the ${counts.completed_count} tasks already completed`,
        { completed_count: counts.completed_count, target_count: attributes.target_count },
      );
    }

    const changed = this.changedAttributes(row, attributes);
    if (changed.length > 0) {
      row = await this.orders
        .update(trx, id, {
          ...(attributes.name !== undefined ? { name: attributes.name } : {}),
          ...(attributes.target_count !== undefined ? { target_count: attributes.target_count } : {}),
          ...(attributes.priority !== undefined ? { priority: attributes.priority } : {}),
          ...(attributes.deadline !== undefined ? { deadline: attributes.deadline } : {}),
          ...(attributes.metadata !== undefined ? { metadata: JSON.stringify(attributes.metadata) } : {}),
        })
        .catch((err) => {
          throw err instanceof OrderNameTaken ? nameTaken(attributes.name ?? '') : err;
        });
      await this.outbox.append(trx, orderEvents.updated, { order: toOrder(row, counts), changed }, { aggregateId: id });
    }
    if (status !== undefined && status !== row.status) {
      row = await this.transition(trx, row, status, 'manual');
    }
    // A lower target, or a resume, may mean the order is done already.
    row = await this.autoAdvance(trx, row);
    return this.view(trx, row);
  }

  /**
   * Moves an order along its graph with a compare-and-set; manual changes and automatic advance both
   * come through here. Completion finalizes the open batches in the same transaction: their runnable
   * tasks are cancelled (uploads in flight are left to finish) and the batches are completed.
   */
  async transition(
    trx: Transaction<ProductionDB>,
    current: OrderRow,
    to: OrderStatus,
    cause: 'manual' | 'automatic',
  ): Promise<OrderRow> {
    const from = current.status as OrderStatus;
    if (!canTransitionOrder(from, to)) {
      throw new DomainError('invalid_transition', `an order cannot go from ${from} to ${to}`, {
        from,
        to,
        current_status: from,
      });
    }
    const row = await this.orders.transition(trx, current.id, from, to);
    if (!row) {
      throw new DomainError('conflict', `order ${current.id} changed while it was being updated; retry`, { from, to });
    }
    if (to === 'completed') await this.finalizeOpenBatches(trx, row);
    await this.outbox.append(
      trx,
      orderEvents.statusChanged,
      { order: await this.view(trx, row), from, to, cause },
      { aggregateId: row.id },
    );
    return row;
  }

  private async finalizeOpenBatches(trx: Transaction<ProductionDB>, order: OrderRow): Promise<void> {
    const open = await this.batches.openForOrder(trx, order.id);
    await this.taskTransitions.cancelRunnable(
      trx,
      open.map((b) => b.id),
      'order_completed',
    );
    for (const batch of open) await this.batchTransitions.move(trx, batch, 'completed', 'order_completed');
  }

  /**
   * Automatic advance from completed task counts: created → in_progress at the first completed task,
   * in_progress → completed at the target. The caller holds the order lock. A paused order stays
   * paused (there is no paused → completed edge); it completes when resumed.
   */
  async autoAdvance(trx: Transaction<ProductionDB>, order: OrderRow): Promise<OrderRow> {
    const { completed_count } = await this.orders.counts(trx, order.id);
    let row = order;
    if (row.status === 'created' && completed_count > 0)
      row = await this.transition(trx, row, 'in_progress', 'automatic');
    if (row.status === 'in_progress' && completed_count >= row.target_count) {
      row = await this.transition(trx, row, 'completed', 'automatic');
    }
    return row;
  }

  /** Soft delete, refused (naming what) while batches, tasks or episodes refer to the order. */
  async delete(actor: Actor, id: string, trx: Transaction<ProductionDB>): Promise<{ id: string; deleted_at: string }> {
    await this.lock(trx, actor, id);
    const batches = await this.batches.liveCountsForOrder(trx, id);
    const refs = await this.orders.references(trx, id);
    if (batches.batches > 0 || refs.tasks > 0 || refs.episodes > 0) {
      throw new DomainError(
        'referenced',
        `order ${id} still has ${batches.batches} batch(es), ${refs.tasks} task(s) and ${refs.episodes} episode(s)`,
        {
          referenced_by: batches.sample.map((b) => ({ type: 'batch', id: b.id, name: b.name })),
          reference_counts: { batches: batches.batches, tasks: refs.tasks, episodes: refs.episodes },
        },
      );
    }
    const deleted = await this.orders.softDelete(trx, id);
    const deleted_at = deleted.deleted_at!.toISOString();
    await this.outbox.append(
      trx,
      orderEvents.deleted,
      { order_id: id, organization_id: actor.org, deleted_at },
      { aggregateId: id },
    );
    return { id, deleted_at };
  }

  private changedAttributes(row: OrderRow, attributes: Omit<UpdateOrderBody, 'status'>): string[] {
    const changed: string[] = [];
    if (attributes.name !== undefined && attributes.name !== row.name) changed.push('name');
    if (attributes.target_count !== undefined && attributes.target_count !== row.target_count)
      changed.push('target_count');
    if (attributes.priority !== undefined && attributes.priority !== row.priority) changed.push('priority');
    if (attributes.deadline !== undefined) {
      const next = attributes.deadline === null ? null : new Date(attributes.deadline).getTime();
      if (next !== (row.deadline?.getTime() ?? null)) changed.push('deadline');
    }
    if (attributes.metadata !== undefined && JSON.stringify(attributes.metadata) !== JSON.stringify(row.metadata)) {
      changed.push('metadata');
    }
    return changed;
  }
}
