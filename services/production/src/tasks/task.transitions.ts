import { decideTask, type TaskAction, type TaskStatus, taskEvents } from '@ferry/contracts';
import { DomainError, Outbox } from '@ferry/platform';
import { Injectable } from '@nestjs/common';
import type { Transaction } from 'kysely';
import type { ProductionDB } from '../database.js';
import { TaskRepository, type TaskRow, toTask } from './task.repository.js';

type Cause = 'device' | 'upload_verified' | 'batch_cancelled' | 'batch_recalled' | 'order_completed' | 'operator';

/**
 * Every task status change goes through here: the decision comes from the state-machine table in the
 * contracts, the change is a guarded update from the status the caller locked, and each change writes
 * its task.status_changed event in the same transaction.
 */
@Injectable()
export class TaskTransitions {
  constructor(
    private readonly tasks: TaskRepository,
    private readonly outbox: Outbox,
  ) {}

  /** Applies `action` to a task the caller has locked. Returns whether anything changed. */
  async apply(
    trx: Transaction<ProductionDB>,
    task: TaskRow,
    action: Exclude<TaskAction, 'delete' | 'configure'>,
    cause: Cause,
    extra: { error_message?: string | null } = {},
  ): Promise<{ task: TaskRow; changed: boolean }> {
    const from = task.status as TaskStatus;
    const decision = decideTask(from, action);
    if (decision.kind === 'refuse') {
      throw new DomainError('invalid_state', `cannot ${action} task ${task.id}: ${decision.reason}`, {
        task_id: task.id,
        action,
        current_status: from,
      });
    }
    if (decision.kind === 'noop' || decision.to === 'deleted') return { task, changed: false };
    const [row] = await this.tasks.transition(trx, [task.id], [from], decision.to, extra);
    if (!row) throw new DomainError('conflict', `task ${task.id} changed concurrently; retry`, { task_id: task.id });
    const updated = { ...row, episode_id: task.episode_id };
    await this.outbox.append(
      trx,
      taskEvents.statusChanged,
      { task: toTask(updated), from, to: decision.to, cause },
      { aggregateId: task.id },
    );
    return { task: updated, changed: true };
  }

  /** Soft-deletes tasks of one batch, with a task.deleted event each. */
  async delete(
    trx: Transaction<ProductionDB>,
    scope: { organizationId: string; orderId: string; batchId: string },
    taskIds: readonly string[],
  ): Promise<string> {
    const deletedAt = (await this.tasks.softDelete(trx, taskIds)).toISOString();
    await this.outbox.appendMany(
      trx,
      taskEvents.deleted,
      taskIds.map((taskId) => ({
        payload: {
          task_id: taskId,
          organization_id: scope.organizationId,
          order_id: scope.orderId,
          batch_id: scope.batchId,
          deleted_at: deletedAt,
        },
        aggregateId: taskId,
      })),
    );
    return deletedAt;
  }

  /** Cancels the runnable tasks of the batches (one statement, one event each); uploading ones stay. */
  async cancelRunnable(trx: Transaction<ProductionDB>, batchIds: readonly string[], cause: Cause): Promise<number> {
    const rows = await this.tasks.cancelRunnable(trx, batchIds);
    await this.outbox.appendMany(
      trx,
      taskEvents.statusChanged,
      rows.map(({ previous_status, ...row }) => ({
        payload: { task: toTask(row), from: previous_status, to: 'cancelled' as const, cause },
        aggregateId: row.id,
      })),
    );
    return rows.length;
  }
}
