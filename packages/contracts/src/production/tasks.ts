import { z } from 'zod';
import { defineEvent, defineRpc } from '../messaging.js';
import { PageQuery, pageOf } from '../pagination.js';
import { commaList, Metadata, Timestamp, Uuid } from '../primitives.js';
import { TASK_STATUSES } from './task-machine.js';
import { DeviceId } from './workstations.js';

export const TaskStatus = z.enum(TASK_STATUSES);
export type TaskStatus = z.infer<typeof TaskStatus>;

/** A client's own id for a task, unique per order: creating with it again returns the same task. */
export const ExternalId = z
  .string()
  .trim()
  .min(1)
  .max(200)
  .regex(/^[^\p{Cc}]*$/u, 'must not contain control characters');

/** The task group (e.g. an SOP/sub-scene combination) a task belongs to within its batch. */
export const TaskGroupName = z
  .string()
  .trim()
  .min(1)
  .max(100)
  .regex(/^[A-Za-z0-9][A-Za-z0-9 ._:/-]*$/, 'letters, digits, space and . _ : / - only');

export const MAX_BULK_TASKS = 10_000;

export const Task = z
  .object({
    id: Uuid,
    organization_id: Uuid,
    order_id: Uuid,
    batch_id: Uuid,
    workstation_id: Uuid,
    scene_id: Uuid,
    external_id: z.string().nullable(),
    group: z.string().nullable(),
    status: TaskStatus,
    error_message: z.string().nullable(),
    /** The task's live episode, once a verified upload created it. */
    episode_id: Uuid.nullable(),
    metadata: z.record(z.string(), z.unknown()),
    ready_at: Timestamp.nullable(),
    started_at: Timestamp.nullable(),
    completed_at: Timestamp.nullable(),
    created_at: Timestamp,
    updated_at: Timestamp,
  })
  .meta({ id: 'Task', description: 'One recording to make.' });
export type Task = z.infer<typeof Task>;

export const CreateTaskBody = z
  .object({
    workstation_id: Uuid,
    external_id: ExternalId.optional(),
    group: TaskGroupName.optional(),
    metadata: Metadata.default({}),
  })
  .strict()
  .meta({
    id: 'CreateTaskBody',
    description:
      'Placed in the open batch of the order and workstation (one is created if none is open). With an external_id that ' +
      'already exists in the order, the existing task is returned unchanged (200).',
  });
export type CreateTaskBody = z.infer<typeof CreateTaskBody>;

export const BulkCreateTasksBody = z
  .object({ items: z.array(CreateTaskBody).min(1).max(MAX_BULK_TASKS) })
  .strict()
  .meta({ id: 'BulkCreateTasksBody' });
export type BulkCreateTasksBody = z.infer<typeof BulkCreateTasksBody>;

export const SkippedTask = z.object({
  task: Task,
  reason: z.literal('duplicate_external_id'),
  external_id: z.string(),
});

export const BulkCreateTasksResult = z
  .object({
    created: z.array(Task),
    skipped: z.array(SkippedTask),
    summary: z.object({
      total_requested: z.number().int(),
      created: z.number().int(),
      skipped: z.number().int(),
    }),
  })
  .meta({ id: 'BulkCreateTasksResult' });
export type BulkCreateTasksResult = z.infer<typeof BulkCreateTasksResult>;

/** Keystone's `POST /tasks`: `quantity` tasks in the open batch of (order, workstation). */
export const CreateTasksBody = z
  .object({
    order_id: Uuid,
    workstation_id: Uuid,
    quantity: z.number().int().min(1).max(1000),
    group: TaskGroupName.optional(),
  })
  .strict()
  .meta({ id: 'CreateTasksBody' });
export type CreateTasksBody = z.infer<typeof CreateTasksBody>;

export const CreateTasksResult = z.object({ batch_id: Uuid, tasks: z.array(Task) }).meta({ id: 'CreateTasksResult' });

const taskFilters = {
  order_id: Uuid.optional(),
  batch_id: Uuid.optional(),
  workstation_id: Uuid.optional(),
  device_id: DeviceId.optional(),
  external_id: ExternalId.optional(),
  group: TaskGroupName.optional(),
};
export const TaskListQuery = PageQuery.extend({ ...taskFilters, status: commaList(TaskStatus).optional() }).strict();
export const TaskListFilter = PageQuery.extend({
  ...taskFilters,
  status: z.array(TaskStatus).min(1).optional(),
}).strict();
export type TaskListFilter = z.infer<typeof TaskListFilter>;

export const TaskPage = pageOf(Task).meta({ id: 'TaskPage' });
export const TaskIdParams = z.object({ id: Uuid }).strict();
export const OrderTaskParams = z.object({ id: Uuid }).strict();

/**
 * Device-facing actions name the acting device; it must be the one bound to the task's workstation.
 * With a device token the device is the token's (`device_id` may be omitted); an operator names it.
 */
export const DeviceActionBody = z.object({ device_id: DeviceId.optional() }).strict().meta({ id: 'DeviceActionBody' });
export const FailTaskBody = z
  .object({ device_id: DeviceId.optional(), reason: z.string().trim().min(1).max(2000) })
  .strict()
  .meta({ id: 'FailTaskBody' });

/** Statuses a device works on: runnable tasks, and those it is uploading. */
export const DeviceTaskStatus = z.enum(['pending', 'ready', 'in_progress', 'uploading']);
export const DeviceTaskListQuery = PageQuery.extend({
  /** Default: the runnable ones (pending, ready, in_progress). */
  status: commaList(DeviceTaskStatus).optional(),
}).strict();
export const DeviceTaskListFilter = PageQuery.extend({
  status: z.array(DeviceTaskStatus).min(1).optional(),
}).strict();
export type DeviceTaskListFilter = z.infer<typeof DeviceTaskListFilter>;

/** Can this device upload a recording for this task now? (transfer asks before any byte flows) */
export const UploadEligibility = z.object({
  task_id: Uuid,
  organization_id: Uuid,
  workstation_id: Uuid,
  status: TaskStatus,
});
export type UploadEligibility = z.infer<typeof UploadEligibility>;

export const TaskConfig = z
  .object({
    task_id: Uuid,
    order_id: Uuid,
    batch_id: Uuid,
    scene: z.object({ id: Uuid, name: z.string(), description: z.string().nullable() }),
    workstation_id: Uuid,
    device_id: z.string(),
    collector_operator_id: z.string(),
    group: z.string().nullable(),
    external_id: z.string().nullable(),
    metadata: z.record(z.string(), z.unknown()),
  })
  .meta({
    id: 'TaskConfig',
    description: 'What the recorder needs to record the task; served only while it is pending.',
  });
export type TaskConfig = z.infer<typeof TaskConfig>;

export const TaskActionResult = z
  .object({
    task: Task,
    /** False when the action was a repeat or its outcome already held (nothing changed). */
    changed: z.boolean(),
  })
  .meta({ id: 'TaskActionResult' });

export const DeleteTaskReply = z.object({ id: Uuid, deleted_at: Timestamp });

export const taskRpc = {
  createInOrder: defineRpc({
    subject: 'production.rpc.task.create_in_order',
    kind: 'command',
    request: z.object({ order_id: Uuid, task: CreateTaskBody }),
    reply: z.object({ created: z.boolean(), task: Task }),
  }),
  bulkCreate: defineRpc({
    subject: 'production.rpc.task.bulk_create',
    kind: 'command',
    request: z.object({ order_id: Uuid, items: z.array(CreateTaskBody).min(1).max(MAX_BULK_TASKS) }),
    reply: BulkCreateTasksResult,
  }),
  createMany: defineRpc({
    subject: 'production.rpc.task.create_many',
    kind: 'command',
    request: CreateTasksBody,
    reply: CreateTasksResult,
  }),
  get: defineRpc({ subject: 'production.rpc.task.get', kind: 'query', request: z.object({ id: Uuid }), reply: Task }),
  list: defineRpc({
    subject: 'production.rpc.task.list',
    kind: 'query',
    request: z.object({ query: TaskListFilter }),
    reply: TaskPage,
  }),
  delete: defineRpc({
    subject: 'production.rpc.task.delete',
    kind: 'command',
    request: z.object({ id: Uuid }),
    reply: DeleteTaskReply,
  }),
  config: defineRpc({
    subject: 'production.rpc.task.config',
    kind: 'query',
    request: z.object({ id: Uuid }),
    reply: TaskConfig,
  }),
  /**
   * Refuses with `not_owner` when the device is not the one bound to the task's workstation, and
   * `invalid_state` when the task cannot take an upload (completed, failed, cancelled).
   */
  uploadEligibility: defineRpc({
    subject: 'production.rpc.task.upload_eligibility',
    kind: 'query',
    request: z.object({ id: Uuid, device_id: DeviceId }),
    reply: UploadEligibility,
  }),
  /** Tasks of the workstation the device is currently bound to (empty when it is bound to none). */
  listForDevice: defineRpc({
    subject: 'production.rpc.task.list_for_device',
    kind: 'query',
    request: z.object({ device_id: DeviceId, query: DeviceTaskListFilter }),
    reply: TaskPage,
  }),
  deviceAction: defineRpc({
    subject: 'production.rpc.task.device_action',
    kind: 'command',
    request: z.object({
      id: Uuid,
      action: z.enum(['ready', 'start', 'finish', 'fail']),
      device_id: DeviceId,
      reason: z.string().max(2000).optional(),
    }),
    reply: TaskActionResult,
  }),
} as const;

const TaskCause = z.enum([
  'device',
  'upload_verified',
  'batch_cancelled',
  'batch_recalled',
  'order_completed',
  'operator',
]);

export const taskEvents = {
  created: defineEvent({
    type: 'production.evt.task.created.v1',
    schema: z.object({ task: Task }),
    description: 'A task was created (one event per task, also for bulk creation).',
  }),
  statusChanged: defineEvent({
    type: 'production.evt.task.status_changed.v1',
    schema: z.object({ task: Task, from: TaskStatus, to: TaskStatus, cause: TaskCause }),
    description: 'A task moved through its state machine; `cause` says what moved it.',
  }),
  deleted: defineEvent({
    type: 'production.evt.task.deleted.v1',
    schema: z.object({ task_id: Uuid, organization_id: Uuid, order_id: Uuid, batch_id: Uuid, deleted_at: Timestamp }),
    description: 'A task was soft-deleted (directly, by a batch adjustment or a batch delete).',
  }),
} as const;
