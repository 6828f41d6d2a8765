import { z } from 'zod';
import { defineEvent, defineRpc } from '../messaging.js';
import { PageQuery, pageOf } from '../pagination.js';
import { commaList, Description, Metadata, Name, Timestamp, Uuid } from '../primitives.js';
import { MAX_BULK_TASKS, Task, TaskGroupName } from './tasks.js';

export const BatchStatus = z.enum(['pending', 'active', 'completed', 'cancelled', 'recalled']);
export type BatchStatus = z.infer<typeof BatchStatus>;

export const TaskCounts = z.object({
  total: z.number().int(),
  pending: z.number().int(),
  ready: z.number().int(),
  in_progress: z.number().int(),
  uploading: z.number().int(),
  completed: z.number().int(),
  failed: z.number().int(),
  cancelled: z.number().int(),
});
export type TaskCounts = z.infer<typeof TaskCounts>;

export const Batch = z
  .object({
    id: Uuid,
    organization_id: Uuid,
    order_id: Uuid,
    workstation_id: Uuid,
    name: z.string(),
    notes: z.string().nullable(),
    status: BatchStatus,
    /** Episodes created from this batch's tasks, maintained in the transaction that creates each. */
    episode_count: z.number().int(),
    task_counts: TaskCounts,
    metadata: z.record(z.string(), z.unknown()),
    started_at: Timestamp.nullable(),
    ended_at: Timestamp.nullable(),
    created_at: Timestamp,
    updated_at: Timestamp,
  })
  .meta({ id: 'Batch', description: 'The part of an order one workstation records.' });
export type Batch = z.infer<typeof Batch>;

export const TaskGroup = z
  .object({ group: TaskGroupName, quantity: z.number().int().min(1).max(MAX_BULK_TASKS) })
  .strict();

function uniqueGroups(groups: { group: string }[], ctx: z.RefinementCtx) {
  const seen = new Set<string>();
  groups.forEach((g, i) => {
    if (seen.has(g.group))
      ctx.addIssue({ code: 'custom', path: [i, 'group'], message: `group "${g.group}" appears twice` });
    seen.add(g.group);
  });
}

export const CreateBatchBody = z
  .object({
    order_id: Uuid,
    workstation_id: Uuid,
    name: Name.optional(),
    notes: Description.optional(),
    metadata: Metadata.default({}),
    task_groups: z
      .array(TaskGroup)
      .min(1)
      .max(100)
      .superRefine(uniqueGroups)
      .refine((gs) => gs.reduce((n, g) => n + g.quantity, 0) <= MAX_BULK_TASKS, {
        message: `at most ${MAX_BULK_TASKS} tasks per batch`,
      }),
  })
  .strict()
  .meta({
    id: 'CreateBatchBody',
    description: 'Creates the batch and all its tasks in one transaction, within the order’s quota.',
  });
export type CreateBatchBody = z.infer<typeof CreateBatchBody>;

export const AdjustTaskGroupsBody = z
  .object({
    task_groups: z
      .array(z.object({ group: TaskGroupName, quantity: z.number().int().min(0).max(MAX_BULK_TASKS) }).strict())
      .min(1)
      .max(100)
      .superRefine(uniqueGroups),
  })
  .strict()
  .meta({
    id: 'AdjustTaskGroupsBody',
    description:
      'Declarative: the wanted number of tasks per group. Pending tasks are added or removed to match; tasks that ' +
      'already started (or hold an episode) cannot be removed.',
  });
export type AdjustTaskGroupsBody = z.infer<typeof AdjustTaskGroupsBody>;

export const AdjustTaskGroupsResult = z
  .object({ created: z.array(Task), deleted_task_ids: z.array(Uuid), batch: Batch })
  .meta({ id: 'AdjustTaskGroupsResult' });

export const UpdateBatchBody = z
  .object({
    name: Name.optional(),
    notes: Description.nullable().optional(),
    metadata: Metadata.optional(),
    /** The only status a client sets directly; the others follow from task outcomes. */
    status: z.literal('cancelled').optional(),
  })
  .strict()
  .refine((b) => Object.keys(b).length > 0, 'at least one field must be given')
  .meta({ id: 'UpdateBatchBody' });
export type UpdateBatchBody = z.infer<typeof UpdateBatchBody>;

export const DeleteBatchResult = z
  .object({
    batch_deleted: z.boolean(),
    tasks_removed: z.number().int(),
    completed_tasks: z.number().int(),
    batch: Batch.nullable(),
  })
  .meta({ id: 'DeleteBatchResult' });

const batchFilters = { order_id: Uuid.optional(), workstation_id: Uuid.optional() };
export const BatchListQuery = PageQuery.extend({ ...batchFilters, status: commaList(BatchStatus).optional() }).strict();
export const BatchListFilter = PageQuery.extend({
  ...batchFilters,
  status: z.array(BatchStatus).min(1).optional(),
}).strict();
export type BatchListFilter = z.infer<typeof BatchListFilter>;

export const BatchPage = pageOf(Batch).meta({ id: 'BatchPage' });
export const BatchIdParams = z.object({ id: Uuid }).strict();

export const batchRpc = {
  create: defineRpc({
    subject: 'production.rpc.batch.create',
    kind: 'command',
    request: z.object({ batch: CreateBatchBody }),
    reply: z.object({ batch: Batch, tasks: z.array(Task) }),
  }),
  get: defineRpc({ subject: 'production.rpc.batch.get', kind: 'query', request: z.object({ id: Uuid }), reply: Batch }),
  list: defineRpc({
    subject: 'production.rpc.batch.list',
    kind: 'query',
    request: z.object({ query: BatchListFilter }),
    reply: BatchPage,
  }),
  update: defineRpc({
    subject: 'production.rpc.batch.update',
    kind: 'command',
    request: z.object({ id: Uuid, patch: UpdateBatchBody }),
    reply: Batch,
  }),
  adjust: defineRpc({
    subject: 'production.rpc.batch.adjust',
    kind: 'command',
    request: z.object({ id: Uuid, task_groups: AdjustTaskGroupsBody.shape.task_groups }),
    reply: AdjustTaskGroupsResult,
  }),
  recall: defineRpc({
    subject: 'production.rpc.batch.recall',
    kind: 'command',
    request: z.object({ id: Uuid }),
    reply: Batch,
  }),
  delete: defineRpc({
    subject: 'production.rpc.batch.delete',
    kind: 'command',
    request: z.object({ id: Uuid }),
    reply: DeleteBatchResult,
  }),
} as const;

export const batchEvents = {
  created: defineEvent({
    type: 'production.evt.batch.created.v1',
    schema: z.object({ batch: Batch }),
    description: 'A batch was created with its tasks (each task also has its own task.created).',
  }),
  statusChanged: defineEvent({
    type: 'production.evt.batch.status_changed.v1',
    schema: z.object({
      batch: Batch,
      from: BatchStatus,
      to: BatchStatus,
      cause: z.enum(['task_outcome', 'cancelled', 'recalled', 'order_completed', 'deleted']),
    }),
    description: 'A batch moved: automatically from task outcomes, or by cancel, recall or order completion.',
  }),
  deleted: defineEvent({
    type: 'production.evt.batch.deleted.v1',
    schema: z.object({ batch_id: Uuid, organization_id: Uuid, order_id: Uuid, deleted_at: Timestamp }),
    description: 'A batch was soft-deleted with its unfinished tasks.',
  }),
} as const;
