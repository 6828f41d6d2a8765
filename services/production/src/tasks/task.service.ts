import {
  type Actor,
  type BulkCreateTasksResult,
  type CreateTaskBody,
  type CreateTasksBody,
  type DeviceTaskListFilter,
  decideTask,
  type Page,
  RUNNABLE_TASK_STATUSES,
  type Task,
  type TaskConfig,
  type TaskListFilter,
  type TaskStatus,
  TERMINAL_TASK_STATUSES,
  type UploadEligibility,
} from '@ferry/contracts';
import { DomainError, decodeCursor, isIdCursor, notFound, toPage } from '@ferry/platform';
import { Injectable } from '@nestjs/common';
import { Kysely, type Transaction } from 'kysely';
import { type BatchRow } from '../batches/batch.repository.js';
import { BatchTransitions } from '../batches/batch.transitions.js';
import type { ProductionDB } from '../database.js';
import { OrderService } from '../orders/order.service.js';
import { SceneRepository } from '../scenes/scene.repository.js';
import { WorkstationRepository } from '../workstations/workstation.repository.js';
import { TaskLocks } from './task.locks.js';
import { TaskOutcomes } from './task.outcomes.js';
import { TaskPlacement, type TaskSpec } from './task.placement.js';
import { TaskRepository, type TaskRow, toTask } from './task.repository.js';
import { TaskTransitions } from './task.transitions.js';

/** Tasks: idempotent creation by external_id, device actions, delete, config (DESIGN §5). */
@Injectable()
export class TaskService {
  constructor(
    private readonly db: Kysely<ProductionDB>,
    private readonly tasks: TaskRepository,
    private readonly locks: TaskLocks,
    private readonly placement: TaskPlacement,
    private readonly transitions: TaskTransitions,
    private readonly batchTransitions: BatchTransitions,
    private readonly orders: OrderService,
    private readonly workstations: WorkstationRepository,
    private readonly scenes: SceneRepository,
    private readonly outcomes: TaskOutcomes,
  ) {}

  /**
   * One task in the open batch of (order, workstation). An external_id that exists in the order returns
   * that task unchanged (`created: false`) and changes nothing else, whatever the rest of the body says.
   */
  async createInOrder(
    actor: Actor,
    orderId: string,
    body: CreateTaskBody,
    trx: Transaction<ProductionDB>,
  ): Promise<{ created: boolean; task: Task }> {
    const result = await this.bulkCreate(actor, orderId, [body], trx, 'body');
    const created = result.created[0];
    if (created) return { created: true, task: created };
    return { created: false, task: result.skipped[0]!.task };
  }

  /**
   * Up to 10,000 tasks in one transaction. Items without external_id always create; an external_id
   * already in the order, or repeated within the request, is skipped with the task it refers to.
   */
  async bulkCreate(
    actor: Actor,
    orderId: string,
    items: readonly CreateTaskBody[],
    trx: Transaction<ProductionDB>,
    pathPrefix = 'body.items',
  ): Promise<BulkCreateTasksResult> {
    const order = await this.orders.lock(trx, actor, orderId);
    this.placement.assertAcceptsTasks(order);
    const workstations = await this.placement.currentWorkstations(
      trx,
      actor,
      items.map((item, i) => ({
        id: item.workstation_id,
        path: pathPrefix === 'body' ? 'body.workstation_id' : `${pathPrefix}.${i}.workstation_id`,
      })),
    );

    // The first occurrence of an external_id is inserted; later ones in the request are duplicates of it.
    const firstIndex = new Map<string, number>();
    const toInsert: number[] = [];
    for (const [i, item] of items.entries()) {
      if (item.external_id === undefined) {
        toInsert.push(i);
      } else if (!firstIndex.has(item.external_id)) {
        firstIndex.set(item.external_id, i);
        toInsert.push(i);
      }
    }

    const batches = new Map<string, BatchRow>();
    const newBatches: BatchRow[] = [];
    for (const ws of workstations.values()) {
      const { batch, isNew } = await this.placement.openBatch(trx, order, ws);
      batches.set(ws.id, batch);
      if (isNew) newBatches.push(batch);
    }
    const specs = toInsert.map((i) => {
      const item = items[i]!;
      const spec: TaskSpec = {
        workstation: workstations.get(item.workstation_id)!,
        external_id: item.external_id ?? null,
        group: item.group ?? null,
        metadata: item.metadata,
      };
      return { spec, batchId: batches.get(item.workstation_id)!.id };
    });
    const inserted = await this.placement.insert(trx, order, specs);

    const byExternalId = new Map<string, TaskRow>();
    inserted.forEach((row) => {
      if (row?.external_id) byExternalId.set(row.external_id, row);
    });
    const conflicted = [...firstIndex.keys()].filter((ext) => !byExternalId.has(ext));
    for (const row of await this.tasks.findByExternalIds(trx, order.id, conflicted)) {
      byExternalId.set(row.external_id!, row);
    }

    const createdRows = inserted.filter((r): r is TaskRow => r !== undefined);
    const result: BulkCreateTasksResult = {
      created: [],
      skipped: [],
      summary: { total_requested: items.length, created: 0, skipped: 0 },
    };
    let next = 0;
    for (const [i, item] of items.entries()) {
      const row = toInsert[next] === i ? inserted[next++] : undefined;
      if (row) {
        result.created.push(toTask(row));
        continue;
      }
      const ext = item.external_id!;
      result.skipped.push({ task: toTask(byExternalId.get(ext)!), reason: 'duplicate_external_id', external_id: ext });
    }
    result.summary.created = result.created.length;
    result.summary.skipped = result.skipped.length;

    await this.placement.assertQuota(trx, order, createdRows.length);
    await this.placement.finish(trx, createdRows, newBatches);
    return result;
  }

  /** Keystone's legacy `POST /tasks`: `quantity` tasks (no external ids) in the open batch. */
  async createMany(
    actor: Actor,
    body: CreateTasksBody,
    trx: Transaction<ProductionDB>,
  ): Promise<{ batch_id: string; tasks: Task[] }> {
    const order = await this.orders.lock(trx, actor, body.order_id);
    this.placement.assertAcceptsTasks(order);
    const ws = (
      await this.placement.currentWorkstations(trx, actor, [{ id: body.workstation_id, path: 'body.workstation_id' }])
    ).get(body.workstation_id)!;
    const { batch, isNew } = await this.placement.openBatch(trx, order, ws);
    const spec: TaskSpec = { workstation: ws, external_id: null, group: body.group ?? null, metadata: {} };
    const rows = (
      await this.placement.insert(
        trx,
        order,
        Array.from({ length: body.quantity }, () => ({ spec, batchId: batch.id })),
      )
    ).filter((r): r is TaskRow => r !== undefined);
    await this.placement.assertQuota(trx, order, rows.length);
    await this.placement.finish(trx, rows, isNew ? [batch] : []);
    return { batch_id: batch.id, tasks: rows.map(toTask) };
  }

  async get(actor: Actor, id: string): Promise<Task> {
    const row = await this.tasks.find(this.db, actor.org, id);
    if (!row) throw notFound('Task', id);
    return toTask(row);
  }

  async list(actor: Actor, filter: TaskListFilter): Promise<Page<Task>> {
    const after = filter.cursor ? decodeCursor(filter.cursor, isIdCursor).id : undefined;
    const rows = await this.tasks.list(this.db, actor.org, filter, after);
    return toPage(rows, filter.limit, toTask, (r) => ({ id: r.id }));
  }

  /**
   * Before any byte of an upload flows (transfer asks): the device must be the one bound to the task's
   * workstation, and the task must still be able to take an upload (not completed, failed, cancelled).
   * Production checks both again, authoritatively, when the episode is created.
   */
  async uploadEligibility(actor: Actor, id: string, deviceId: string): Promise<UploadEligibility> {
    const task = await this.tasks.find(this.db, actor.org, id);
    if (!task) throw notFound('Task', id);
    const ws = await this.workstations.findById(this.db, task.workstation_id);
    if (!ws || ws.device_id !== deviceId) {
      throw new DomainError('not_owner', `device ${deviceId} does not own task ${id}`, {
        task_id: id,
        device_id: deviceId,
      });
    }
    const status = task.status as TaskStatus;
    if (TERMINAL_TASK_STATUSES.includes(status)) {
      throw new DomainError('invalid_state', `task ${id} is ${status}; it takes no upload`, {
        task_id: id,
        current_status: status,
      });
    }
    return { task_id: task.id, organization_id: task.organization_id, workstation_id: task.workstation_id, status };
  }

  /** The tasks of the workstation `deviceId` is currently bound to (runnable ones unless asked otherwise). */
  async listForDevice(actor: Actor, deviceId: string, filter: DeviceTaskListFilter): Promise<Page<Task>> {
    const ws = await this.workstations.findCurrentByDevice(this.db, actor.org, deviceId);
    if (!ws) return { items: [], next_cursor: null };
    return this.list(actor, {
      limit: filter.limit,
      cursor: filter.cursor,
      workstation_id: ws.id,
      status: filter.status ?? [...RUNNABLE_TASK_STATUSES],
    });
  }

  /** The recorder's config, only while the task is pending (else 409 with the current status). */
  async config(actor: Actor, id: string): Promise<TaskConfig> {
    const task = await this.tasks.find(this.db, actor.org, id);
    if (!task) throw notFound('Task', id);
    const decision = decideTask(task.status as TaskStatus, 'configure');
    if (decision.kind === 'refuse') {
      throw new DomainError('invalid_state', `task ${id} is not configurable: ${decision.reason}`, {
        task_id: id,
        current_status: task.status,
      });
    }
    const [scene, ws] = await Promise.all([
      this.scenes.findById(this.db, task.scene_id),
      this.workstations.findById(this.db, task.workstation_id),
    ]);
    return {
      task_id: task.id,
      order_id: task.order_id,
      batch_id: task.batch_id,
      scene: { id: scene!.id, name: scene!.name, description: scene!.description },
      workstation_id: task.workstation_id,
      device_id: ws!.device_id,
      collector_operator_id: ws!.collector_operator_id,
      group: task.group_name,
      external_id: task.external_id,
      metadata: task.metadata,
    };
  }

  /**
   * ready / start / finish / fail from the device bound to the task's workstation (the binding the task
   * was created under). Repeats are no-ops (`changed: false`); a terminal outcome advances the batch
   * and order in the same transaction.
   */
  async deviceAction(
    actor: Actor,
    req: { id: string; action: 'ready' | 'start' | 'finish' | 'fail'; device_id: string; reason?: string },
    trx: Transaction<ProductionDB>,
  ): Promise<{ task: Task; changed: boolean }> {
    const locked = await this.locks.lock(trx, req.id, actor.org);
    const { task } = locked;
    const ws = await this.workstations.findById(trx, task.workstation_id);
    if (!ws || ws.device_id !== req.device_id) {
      throw new DomainError('not_owner', `device ${req.device_id} does not own task ${task.id}`, {
        task_id: task.id,
        device_id: req.device_id,
      });
    }
    if (req.action === 'fail' && !req.reason) {
      throw new DomainError('validation_failed', 'a failed upload needs a reason', {
        errors: [{ path: 'body.reason', message: 'required' }],
      });
    }
    const { task: after, changed } = await this.outcomes.record(
      trx,
      locked,
      req.action,
      'device',
      req.action === 'fail' ? { error_message: req.reason } : {},
    );
    return { task: toTask(after), changed };
  }

  /** Soft delete; refused once the task is uploading or completed. */
  async delete(actor: Actor, id: string, trx: Transaction<ProductionDB>): Promise<{ id: string; deleted_at: string }> {
    const { batch, task } = await this.locks.lock(trx, id, actor.org);
    const decision = decideTask(task.status as TaskStatus, 'delete');
    if (decision.kind === 'refuse') {
      throw new DomainError('invalid_state', `cannot delete task ${id}: ${decision.reason}`, {
        task_id: id,
        current_status: task.status,
      });
    }
    const deleted_at = await this.transitions.delete(
      trx,
      { organizationId: actor.org, orderId: task.order_id, batchId: task.batch_id },
      [id],
    );
    await this.batchTransitions.advance(trx, batch);
    return { id, deleted_at };
  }
}
