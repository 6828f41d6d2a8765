import {
  type Actor,
  type AdjustTaskGroupsBody,
  type Batch,
  type BatchListFilter,
  type BatchStatus,
  batchEvents,
  type CreateBatchBody,
  episodeEvents,
  type Page,
  type Task,
  type UpdateBatchBody,
} from '@ferry/contracts';
import { DomainError, decodeCursor, isIdCursor, newId, notFound, Outbox, toPage } from '@ferry/platform';
import { Injectable } from '@nestjs/common';
import { Kysely, type Transaction } from 'kysely';

import type { ProductionDB } from '../database.js';
import { EpisodeRepository, toEpisode } from '../episodes/episode.repository.js';
import type { OrderRow } from '../orders/order.repository.js';
import { OrderService } from '../orders/order.service.js';
import { TaskPlacement, type TaskSpec } from '../tasks/task.placement.js';
import { TaskRepository, type TaskRow, toTask } from '../tasks/task.repository.js';
import { TaskTransitions } from '../tasks/task.transitions.js';
import { WorkstationRepository } from '../workstations/workstation.repository.js';
import { BatchRepository, type BatchRow, toBatch } from './batch.repository.js';
import { BatchTransitions } from './batch.transitions.js';

export const RECALLED_LABEL = 'recalled_batch';

/** Batches: one order × one workstation, created with their tasks, cancelled, recalled, adjusted, deleted. */
@Injectable()
export class BatchService {
  constructor(
    private readonly db: Kysely<ProductionDB>,
    private readonly batches: BatchRepository,
    private readonly transitions: BatchTransitions,
    private readonly tasks: TaskRepository,
    private readonly taskTransitions: TaskTransitions,
    private readonly placement: TaskPlacement,
    private readonly orders: OrderService,
    private readonly episodes: EpisodeRepository,
    private readonly workstations: WorkstationRepository,
    private readonly outbox: Outbox,
  ) {}

  private async lockBatch(
    trx: Transaction<ProductionDB>,
    actor: Actor,
    id: string,
  ): Promise<{ order: OrderRow; batch: BatchRow }> {
    const peek = await this.batches.find(trx, actor.org, id);
    if (!peek) throw notFound('Batch', id);
    const order = await this.orders.lock(trx, actor, peek.order_id); // orders before batches
    const batch = await this.batches.find(trx, actor.org, id, { lock: true });
    if (!batch) throw notFound('Batch', id);
    return { order, batch };
  }

  /**
   * The batch and all its tasks in one transaction. The quota (target − live tasks) is checked under
   * the order lock, so concurrent creations can never allocate past the target.
   */
  async create(
    actor: Actor,
    body: CreateBatchBody,
    trx: Transaction<ProductionDB>,
  ): Promise<{ batch: Batch; tasks: Task[] }> {
    const order = await this.orders.lock(trx, actor, body.order_id);
    this.placement.assertAcceptsTasks(order);
    const ws = (
      await this.placement.currentWorkstations(trx, actor, [{ id: body.workstation_id, path: 'body.workstation_id' }])
    ).get(body.workstation_id)!;
    const batch = await this.batches.insert(trx, {
      id: newId(),
      organization_id: actor.org,
      order_id: order.id,
      workstation_id: ws.id,
      name: body.name ?? `${order.name} @ ${ws.name}`,
      notes: body.notes ?? null,
      metadata: body.metadata,
    });
    const placed = body.task_groups.flatMap((g) =>
      Array.from({ length: g.quantity }, () => ({
        spec: { workstation: ws, external_id: null, group: g.group, metadata: {} } satisfies TaskSpec,
        batchId: batch.id,
      })),
    );
    const rows = (await this.placement.insert(trx, order, placed)).filter((r): r is TaskRow => r !== undefined);
    await this.placement.assertQuota(trx, order, rows.length);
    await this.placement.finish(trx, rows, [batch]);
    return { batch: await this.transitions.view(trx, batch), tasks: rows.map(toTask) };
  }

  async get(actor: Actor, id: string): Promise<Batch> {
    const row = await this.batches.find(this.db, actor.org, id);
    if (!row) throw notFound('Batch', id);
    return this.transitions.view(this.db, row);
  }

  async list(actor: Actor, filter: BatchListFilter): Promise<Page<Batch>> {
    const after = filter.cursor ? decodeCursor(filter.cursor, isIdCursor).id : undefined;
    const rows = await this.batches.list(this.db, actor.org, filter, after);
    const counts = await this.tasks.countsByBatch(
      this.db,
      rows.map((r) => r.id),
    );
    return toPage(
      rows,
      filter.limit,
      (r) => toBatch(r, counts.get(r.id)),
      (r) => ({ id: r.id }),
    );
  }

  /** Name, notes, metadata; `status: cancelled` cancels it with its runnable tasks (uploads continue). */
  async update(actor: Actor, id: string, patch: UpdateBatchBody, trx: Transaction<ProductionDB>): Promise<Batch> {
    let { batch } = await this.lockBatch(trx, actor, id);
    const { status, ...attributes } = patch;
    if (Object.keys(attributes).length > 0) {
      batch = await this.batches.update(trx, id, {
        ...(attributes.name !== undefined ? { name: attributes.name } : {}),
        ...(attributes.notes !== undefined ? { notes: attributes.notes } : {}),
        ...(attributes.metadata !== undefined ? { metadata: JSON.stringify(attributes.metadata) } : {}),
      });
    }
    if (status === 'cancelled' && batch.status !== 'cancelled') {
      this.assertFrom(batch, ['pending', 'active'], 'cancelled');
      await this.taskTransitions.cancelRunnable(trx, [id], 'batch_cancelled');
      batch = await this.transitions.move(trx, batch, 'cancelled', 'cancelled');
    }
    return this.transitions.view(trx, batch);
  }

  /**
   * Recall: runnable tasks are cancelled and the episodes already recorded are labelled
   * `recalled_batch` (once), so downstream selections can exclude them.
   */
  async recall(actor: Actor, id: string, trx: Transaction<ProductionDB>): Promise<Batch> {
    let { batch } = await this.lockBatch(trx, actor, id);
    this.assertFrom(batch, ['active', 'completed'], 'recalled');
    await this.taskTransitions.cancelRunnable(trx, [id], 'batch_recalled');
    const labelled = await this.episodes.addLabel(trx, id, RECALLED_LABEL);
    await this.outbox.appendMany(
      trx,
      episodeEvents.updated,
      labelled.map((e) => ({ payload: { episode: toEpisode(e), changed: ['labels'] }, aggregateId: e.id })),
    );
    batch = await this.transitions.move(trx, batch, 'recalled', 'recalled');
    return this.transitions.view(trx, batch);
  }

  /**
   * Declarative group sizes: pending tasks are added or removed (newest first) to reach each target.
   * Tasks that started or hold an episode are never removed; asking for fewer is refused with numbers.
   */
  async adjust(
    actor: Actor,
    id: string,
    groups: AdjustTaskGroupsBody['task_groups'],
    trx: Transaction<ProductionDB>,
  ): Promise<{ created: Task[]; deleted_task_ids: string[]; batch: Batch }> {
    const { order, batch } = await this.lockBatch(trx, actor, id);
    this.assertFrom(batch, ['pending', 'active'], 'adjusted');
    const current = await this.tasks.groupCounts(trx, id);
    const toRemove: string[] = [];
    const toAdd: { group: string; count: number }[] = [];
    for (const { group, quantity } of groups) {
      const have = current.get(group) ?? 0;
      if (quantity > have) toAdd.push({ group, count: quantity - have });
      if (quantity < have) {
        const removable = await this.tasks.removablePending(trx, id, group);
        const locked = have - removable.length;
        if (quantity < locked) {
          throw new DomainError(
            'invalid_state',
            `group "${group}" has ${locked} task(s) that already started or hold an episode; it cannot go below that`,
            { group, requested: quantity, locked, current: have },
          );
        }
        toRemove.push(...removable.slice(0, have - quantity).map((t) => t.id));
      }
    }
    if (toAdd.length > 0) this.placement.assertAcceptsTasks(order);
    const ws = (await this.workstations.findById(trx, batch.workstation_id))!;
    const placed = toAdd.flatMap(({ group, count }) =>
      Array.from({ length: count }, () => ({
        spec: { workstation: ws, external_id: null, group, metadata: {} } satisfies TaskSpec,
        batchId: id,
      })),
    );
    const created = (await this.placement.insert(trx, order, placed)).filter((r): r is TaskRow => r !== undefined);
    await this.taskTransitions.delete(trx, { organizationId: actor.org, orderId: order.id, batchId: id }, toRemove);
    await this.placement.assertQuota(trx, order, created.length);
    await this.placement.finish(trx, created, []);
    const after = await this.transitions.advance(trx, batch);
    return { created: created.map(toTask), deleted_task_ids: toRemove, batch: await this.transitions.view(trx, after) };
  }

  /**
   * Delete (Keystone §2.2): only a pending or cancelled batch, never with an upload in flight. With no
   * completed task the batch goes with its tasks; otherwise only the unfinished tasks go and the
   * batch stays, completed, holding its episodes.
   */
  async delete(
    actor: Actor,
    id: string,
    trx: Transaction<ProductionDB>,
  ): Promise<{ batch_deleted: boolean; tasks_removed: number; completed_tasks: number; batch: Batch | null }> {
    const { order, batch } = await this.lockBatch(trx, actor, id);
    this.assertFrom(batch, ['pending', 'cancelled'], 'deleted');
    const live = await this.tasks.liveByBatch(trx, id);
    const uploading = live.filter((t) => t.status === 'uploading');
    if (uploading.length > 0) {
      throw new DomainError('invalid_state', `batch ${id} has ${uploading.length} upload(s) in flight`, {
        uploading_task_ids: uploading.map((t) => t.id).slice(0, 20),
      });
    }
    const completed = live.filter((t) => t.status === 'completed');
    const removable = live.filter((t) => t.status !== 'completed').map((t) => t.id);
    await this.taskTransitions.delete(trx, { organizationId: actor.org, orderId: order.id, batchId: id }, removable);
    if (completed.length === 0) {
      const row = await this.batches.softDelete(trx, id);
      await this.outbox.append(
        trx,
        batchEvents.deleted,
        { batch_id: id, organization_id: actor.org, order_id: order.id, deleted_at: row.deleted_at!.toISOString() },
        { aggregateId: id },
      );
      return { batch_deleted: true, tasks_removed: removable.length, completed_tasks: 0, batch: null };
    }
    const kept = batch.status === 'pending' ? await this.transitions.move(trx, batch, 'completed', 'deleted') : batch;
    return {
      batch_deleted: false,
      tasks_removed: removable.length,
      completed_tasks: completed.length,
      batch: await this.transitions.view(trx, kept),
    };
  }

  private assertFrom(batch: BatchRow, allowed: readonly BatchStatus[], to: string): void {
    if (!allowed.includes(batch.status as BatchStatus)) {
      throw new DomainError('invalid_transition', `a ${batch.status} batch cannot be ${to}`, {
        batch_id: batch.id,
        current_status: batch.status,
        from: batch.status,
        to,
      });
    }
  }
}
