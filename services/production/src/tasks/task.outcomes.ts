import { type TaskAction, type TaskStatus, TERMINAL_TASK_STATUSES } from '@ferry/contracts';
import { Injectable } from '@nestjs/common';
import type { Transaction } from 'kysely';
import { BatchRepository } from '../batches/batch.repository.js';
import { BatchTransitions } from '../batches/batch.transitions.js';
import type { ProductionDB } from '../database.js';
import { OrderService } from '../orders/order.service.js';
import type { LockedTask } from './task.locks.js';
import type { TaskRow } from './task.repository.js';
import { TaskTransitions } from './task.transitions.js';

const TERMINAL: ReadonlySet<TaskStatus> = new Set(TERMINAL_TASK_STATUSES);

type Cause = Parameters<TaskTransitions['apply']>[3];

/**
 * The one home of "a task's outcome → its batch → its order": applies a device's or an upload's action
 * to a locked task and, when the task reached a terminal status, advances its batch and then its order,
 * in the caller's transaction (lock order orders → batches → tasks is already held by TaskLocks).
 */
@Injectable()
export class TaskOutcomes {
  constructor(
    private readonly transitions: TaskTransitions,
    private readonly batchTransitions: BatchTransitions,
    private readonly batches: BatchRepository,
    private readonly orders: OrderService,
  ) {}

  async record(
    trx: Transaction<ProductionDB>,
    locked: LockedTask,
    action: Exclude<TaskAction, 'delete' | 'configure'>,
    cause: Cause,
    extra: { error_message?: string | null } = {},
  ): Promise<{ task: TaskRow; changed: boolean }> {
    const result = await this.transitions.apply(trx, locked.task, action, cause, extra);
    if (result.changed && TERMINAL.has(result.task.status as TaskStatus)) {
      await this.batchTransitions.advance(trx, await this.batches.lockById(trx, locked.batch.id));
      await this.orders.autoAdvance(trx, locked.order);
    }
    return result;
  }
}
