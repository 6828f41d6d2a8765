import { type Batch, type BatchStatus, batchEvents } from '@ferry/contracts';
import { DomainError, Outbox } from '@ferry/platform';
import { Injectable } from '@nestjs/common';
import type { Kysely, Transaction } from 'kysely';
import type { ProductionDB } from '../database.js';
import { TaskRepository } from '../tasks/task.repository.js';
import { WorkstationRepository } from '../workstations/workstation.repository.js';
import { BatchRepository, type BatchRow, toBatch } from './batch.repository.js';

type Cause = 'task_outcome' | 'cancelled' | 'recalled' | 'order_completed' | 'deleted';

/** Batch status changes (compare-and-set + event + workstation activity), and automatic advance. */
@Injectable()
export class BatchTransitions {
  constructor(
    private readonly batches: BatchRepository,
    private readonly tasks: TaskRepository,
    private readonly workstations: WorkstationRepository,
    private readonly outbox: Outbox,
  ) {}

  async view(db: Kysely<ProductionDB>, row: BatchRow): Promise<Batch> {
    const counts = await this.tasks.countsByBatch(db, [row.id]);
    return toBatch(row, counts.get(row.id));
  }

  async move(trx: Transaction<ProductionDB>, batch: BatchRow, to: BatchStatus, cause: Cause): Promise<BatchRow> {
    const from = batch.status as BatchStatus;
    const row = await this.batches.transition(trx, batch.id, [from], to);
    if (!row)
      throw new DomainError('conflict', `batch ${batch.id} changed concurrently; retry`, { batch_id: batch.id });
    await this.outbox.append(
      trx,
      batchEvents.statusChanged,
      { batch: await this.view(trx, row), from, to, cause },
      { aggregateId: batch.id },
    );
    await this.workstations.syncStatus(trx, row.workstation_id);
    return row;
  }

  /**
   * Automatic advance from task outcomes (Keystone §2.2): pending → active once any live task is
   * terminal; active → completed once every live task is. The caller holds the batch lock.
   */
  async advance(trx: Transaction<ProductionDB>, batch: BatchRow): Promise<BatchRow> {
    if (batch.status !== 'pending' && batch.status !== 'active') return batch;
    const counts = (await this.tasks.countsByBatch(trx, [batch.id])).get(batch.id)!;
    const terminal = counts.completed + counts.failed + counts.cancelled;
    let row = batch;
    if (row.status === 'pending' && terminal > 0) row = await this.move(trx, row, 'active', 'task_outcome');
    if (row.status === 'active' && counts.total > 0 && terminal === counts.total) {
      row = await this.move(trx, row, 'completed', 'task_outcome');
    }
    return row;
  }
}
