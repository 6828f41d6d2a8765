import { notFound } from '@ferry/platform';
import { Injectable } from '@nestjs/common';
import type { Transaction } from 'kysely';
import { BatchRepository, type BatchRow } from '../batches/batch.repository.js';
import type { ProductionDB } from '../database.js';
import { OrderRepository, type OrderRow } from '../orders/order.repository.js';
import { TaskRepository, type TaskRow } from './task.repository.js';

export interface LockedTask {
  order: OrderRow;
  batch: BatchRow;
  task: TaskRow;
}

/**
 * Locks a task with its order and batch, in the global lock order (orders → batches → tasks), so a
 * task change that advances its batch and order never deadlocks against a batch or order command.
 */
@Injectable()
export class TaskLocks {
  constructor(
    private readonly orders: OrderRepository,
    private readonly batches: BatchRepository,
    private readonly tasks: TaskRepository,
  ) {}

  /** `org` undefined: any organization (the caller checks it, e.g. against an event's organization). */
  async lock(trx: Transaction<ProductionDB>, taskId: string, org?: string): Promise<LockedTask> {
    const peek = await this.tasks.findById(trx, taskId);
    if (!peek || (org !== undefined && peek.organization_id !== org)) throw notFound('Task', taskId);
    const order = await this.orders.lockById(trx, peek.order_id);
    const batch = await this.batches.lockById(trx, peek.batch_id);
    const task = await this.tasks.find(trx, peek.organization_id, taskId, { lock: true });
    if (!task) throw notFound('Task', taskId); // deleted while we waited for the locks
    return { order, batch, task };
  }
}
