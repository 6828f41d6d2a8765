import { type Actor, batchEvents, taskEvents } from '@ferry/contracts';
import { DomainError, newId, Outbox } from '@ferry/platform';
import { Injectable } from '@nestjs/common';
import type { Transaction } from 'kysely';

import { BatchRepository, type BatchRow } from '../batches/batch.repository.js';
import { BatchTransitions } from '../batches/batch.transitions.js';
import type { ProductionDB } from '../database.js';
import { OrderRepository, type OrderRow } from '../orders/order.repository.js';
import { WorkstationRepository, type WorkstationRow } from '../workstations/workstation.repository.js';
import { type NewTask, TaskRepository, type TaskRow, toTask } from './task.repository.js';

export interface TaskSpec {
  workstation: WorkstationRow;
  external_id: string | null;
  group: string | null;
  metadata: Record<string, unknown>;
}

/**
 * Where tasks are born: checks the order accepts work, finds or opens the batch of (order,
 * workstation), inserts race-free (external_id conflicts are skipped by the unique index), enforces
 * the quota under the order lock, and writes the events. The caller holds the order lock.
 */
@Injectable()
export class TaskPlacement {
  constructor(
    private readonly tasks: TaskRepository,
    private readonly batches: BatchRepository,
    private readonly batchTransitions: BatchTransitions,
    private readonly orders: OrderRepository,
    private readonly workstations: WorkstationRepository,
    private readonly outbox: Outbox,
  ) {}

  /** New tasks only for orders that are not finished (Keystone let paused/cancelled orders through). */
  assertAcceptsTasks(order: OrderRow): void {
    if (order.status === 'completed' || order.status === 'cancelled') {
      throw new DomainError('invalid_state', `order ${order.id} is ${order.status}; it takes no new tasks`, {
        order_id: order.id,
        current_status: order.status,
      });
    }
  }

  /** Current workstation bindings of the organization, share-locked against a concurrent unbind. */
  async currentWorkstations(
    trx: Transaction<ProductionDB>,
    actor: Actor,
    refs: readonly { id: string; path: string }[],
  ): Promise<Map<string, WorkstationRow>> {
    const found = new Map<string, WorkstationRow>();
    for (const id of new Set(refs.map((r) => r.id))) {
      const row = await this.workstations.find(trx, actor.org, id, { lock: 'share', currentOnly: true });
      if (row) found.set(id, row);
    }
    const missing = refs.filter((r) => !found.has(r.id));
    if (missing.length > 0) {
      throw new DomainError('reference_not_found', `${missing.length} item(s) name a workstation that is not current`, {
        errors: missing.map((r) => ({ path: r.path, message: 'no such current workstation in this organization' })),
      });
    }
    return found;
  }

  async openBatch(
    trx: Transaction<ProductionDB>,
    order: OrderRow,
    workstation: WorkstationRow,
  ): Promise<{ batch: BatchRow; isNew: boolean }> {
    const open = await this.batches.findOpen(trx, order.id, workstation.id);
    if (open) return { batch: open, isNew: false };
    const batch = await this.batches.insert(trx, {
      id: newId(),
      organization_id: order.organization_id,
      order_id: order.id,
      workstation_id: workstation.id,
      name: `${order.name} @ ${workstation.name}`,
      notes: null,
      metadata: {},
    });
    return { batch, isNew: true };
  }

  /** Fails the transaction when the order would hold more live tasks than its target. */
  async assertQuota(trx: Transaction<ProductionDB>, order: OrderRow, added: number): Promise<void> {
    if (added === 0) return;
    const { task_count } = await this.orders.counts(trx, order.id);
    if (task_count > order.target_count) {
      const before = task_count - added;
      throw new DomainError(
        'quota_exceeded',
        `order ${order.id} can take ${Math.max(0, order.target_count - before)} more task(s), ${added} requested`,
        {
          target_count: order.target_count,
          task_count: before,
          remaining: Math.max(0, order.target_count - before),
          requested: added,
        },
      );
    }
  }

  /**
   * Inserts tasks into the given batches. Returns the created rows keyed by spec position; specs whose
   * external_id already exists in the order are absent (the caller reports them as skipped).
   */
  async insert(
    trx: Transaction<ProductionDB>,
    order: OrderRow,
    placed: readonly { spec: TaskSpec; batchId: string }[],
  ): Promise<(TaskRow | undefined)[]> {
    const rows: NewTask[] = placed.map(({ spec, batchId }) => ({
      id: newId(),
      organization_id: order.organization_id,
      order_id: order.id,
      batch_id: batchId,
      workstation_id: spec.workstation.id,
      scene_id: order.scene_id,
      external_id: spec.external_id,
      group_name: spec.group,
      metadata: spec.metadata,
    }));
    const inserted = new Map((await this.tasks.insertMany(trx, rows)).map((r) => [r.id, r]));
    return rows.map((r) => inserted.get(r.id));
  }

  /** Events for what was created; new batches that ended up empty are removed as if never made. */
  async finish(
    trx: Transaction<ProductionDB>,
    created: readonly TaskRow[],
    newBatches: readonly BatchRow[],
  ): Promise<void> {
    const used = new Set(created.map((t) => t.batch_id));
    for (const batch of newBatches) {
      if (!used.has(batch.id)) {
        await this.batches.hardDeleteEmpty(trx, batch.id);
        continue;
      }
      await this.outbox.append(
        trx,
        batchEvents.created,
        { batch: await this.batchTransitions.view(trx, batch) },
        { aggregateId: batch.id },
      );
    }
    await this.outbox.appendMany(
      trx,
      taskEvents.created,
      created.map((t) => ({ payload: { task: toTask(t) }, aggregateId: t.id })),
    );
  }
}
