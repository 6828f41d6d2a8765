import type { Actor } from '@ferry/contracts';
import {
  BulkCreateTasksBody,
  BulkCreateTasksResult,
  CreateTaskBody,
  CreateTasksBody,
  CreateTasksResult,
  DeviceActionBody,
  DeviceTaskListQuery,
  FailTaskBody,
  OrderTaskParams,
  Task,
  TaskActionResult,
  TaskConfig,
  TaskIdParams,
  TaskListQuery,
  TaskPage,
  taskRpc,
} from '@ferry/contracts';
import { DomainError } from '@ferry/platform';
import { created, defineRoute, noContent, ok } from '../http/route.js';

const WRITERS = ['admin', 'operator'] as const;
const READERS = ['admin', 'operator', 'viewer'] as const;
const tags = ['Tasks'];

/**
 * The device acting on a task: a device token's own device (a different `device_id` in the body is
 * refused), or the `device_id` an operator names.
 */
export function actingDevice(actor: Actor, named: string | undefined): string {
  if (actor.kind === 'device') {
    if (named !== undefined && named !== actor.sub) {
      throw new DomainError('not_owner', `a device may act only as itself (${actor.sub}), not as ${named}`, {
        device_id: named,
      });
    }
    return actor.sub;
  }
  if (named === undefined) {
    throw new DomainError('validation_failed', 'an operator must name the acting device', {
      errors: [{ path: 'body.device_id', message: 'required with an operator token' }],
    });
  }
  return named;
}

/**
 * Device-facing actions: with the device's own token, or an operator token naming the acting
 * `device_id`. Either way it must be the device of the task's workstation.
 */
function deviceAction(action: 'ready' | 'start' | 'finish', summary: string, description: string) {
  return defineRoute({
    method: 'POST',
    path: `/tasks/:id/${action}`,
    operationId: `${action}Task`,
    summary,
    description,
    tags,
    actors: ['user', 'device'],
    roles: WRITERS,
    params: TaskIdParams,
    body: DeviceActionBody,
    responses: { 200: { description: 'The task; `changed: false` for a repeat.', schema: TaskActionResult } },
    errors: {
      403: 'The device does not own the task (`not_owner`).',
      409: 'Not allowed in the task’s status (`invalid_state`, `details.current_status`).',
    },
    async handle({ params, body }, { rpc, call, actor }) {
      const device_id = actingDevice(actor, body.device_id);
      return ok(await rpc.call(taskRpc.deviceAction, { id: params.id, action, device_id }, call));
    },
  });
}

export const taskRoutes = [
  defineRoute({
    method: 'POST',
    path: '/orders/:id/tasks',
    operationId: 'createOrderTask',
    summary: 'Create a task in an order (idempotent by external_id)',
    description:
      '201 with the new task; 200 with the existing task, unchanged, when `external_id` already exists in the order. ' +
      'Concurrent requests with one external_id make exactly one task.',
    tags,
    roles: WRITERS,
    params: OrderTaskParams,
    body: CreateTaskBody,
    idempotent: true,
    responses: {
      201: { description: 'Created.', schema: Task },
      200: {
        description: 'A task with this external_id already exists in the order; it is returned unchanged.',
        schema: Task,
      },
    },
    errors: {
      409: 'The order takes no new tasks (`invalid_state`) or its quota is used up (`quota_exceeded`).',
      422: 'The workstation is not a current binding (`reference_not_found`).',
    },
    async handle({ params, body }, { rpc, call }) {
      const { created: isNew, task } = await rpc.call(taskRpc.createInOrder, { order_id: params.id, task: body }, call);
      return isNew ? created(task, `/api/v1/tasks/${task.id}`) : ok(task);
    },
  }),
  defineRoute({
    method: 'POST',
    path: '/orders/:id/tasks:bulk',
    operationId: 'bulkCreateOrderTasks',
    summary: 'Create up to 10,000 tasks in one transaction',
    description:
      'Items with an external_id that exists in the order, or repeats within the request, are skipped ' +
      '(`reason: duplicate_external_id`) with the task they refer to. 201 when anything was created, else 200. ' +
      'Over the limit or an invalid item → 400 naming the item, nothing created.',
    tags,
    roles: WRITERS,
    params: OrderTaskParams,
    body: BulkCreateTasksBody,
    idempotent: true,
    maxBodyBytes: 32 * 1024 * 1024,
    responses: {
      201: { description: 'Some tasks were created.', schema: BulkCreateTasksResult },
      200: { description: 'Every item was a duplicate; nothing was created.', schema: BulkCreateTasksResult },
    },
    errors: {
      409: 'The order takes no new tasks, or the quota would be exceeded.',
      422: 'An item names a workstation that is not current.',
    },
    async handle({ params, body }, { rpc, call }) {
      const result = await rpc.call(taskRpc.bulkCreate, { order_id: params.id, items: body.items }, call, {
        timeoutMs: 60_000,
      });
      return result.summary.created > 0 ? created(result) : ok(result);
    },
  }),
  defineRoute({
    method: 'POST',
    path: '/tasks',
    operationId: 'createTasks',
    summary: 'Create tasks in the open batch of an order and workstation',
    description:
      'Keystone’s legacy path: reuses the newest pending or active batch of (order, workstation), or opens one.',
    tags,
    roles: WRITERS,
    body: CreateTasksBody,
    idempotent: true,
    responses: { 201: { description: 'The batch used and the tasks created.', schema: CreateTasksResult } },
    errors: {
      409: 'The order takes no new tasks, or the quota would be exceeded.',
      422: 'The order or workstation does not exist or is not a current binding (`reference_not_found`).',
    },
    async handle({ body }, { rpc, call }) {
      return created(await rpc.call(taskRpc.createMany, body, call));
    },
  }),
  defineRoute({
    method: 'GET',
    path: '/tasks',
    operationId: 'listTasks',
    summary: 'List tasks',
    tags,
    roles: READERS,
    query: TaskListQuery,
    responses: { 200: { description: 'A page of tasks.', schema: TaskPage } },
    async handle({ query }, { rpc, call }) {
      return ok(await rpc.call(taskRpc.list, { query }, call));
    },
  }),
  defineRoute({
    method: 'GET',
    path: '/tasks/:id',
    operationId: 'getTask',
    summary: 'Get a task',
    tags,
    roles: READERS,
    params: TaskIdParams,
    responses: { 200: { description: 'The task.', schema: Task } },
    async handle({ params }, { rpc, call }) {
      return ok(await rpc.call(taskRpc.get, params, call));
    },
  }),
  defineRoute({
    method: 'DELETE',
    path: '/tasks/:id',
    operationId: 'deleteTask',
    summary: 'Delete a task',
    tags,
    roles: WRITERS,
    params: TaskIdParams,
    responses: { 204: { description: 'Deleted.' } },
    errors: { 409: 'The task is uploading or completed (`invalid_state`).' },
    async handle({ params }, { rpc, call }) {
      await rpc.call(taskRpc.delete, params, call);
      return noContent();
    },
  }),
  defineRoute({
    method: 'GET',
    path: '/tasks/:id/config',
    operationId: 'getTaskConfig',
    summary: 'Get the recording config of a pending task',
    tags,
    roles: READERS,
    params: TaskIdParams,
    responses: { 200: { description: 'The config.', schema: TaskConfig } },
    errors: { 409: 'The task is no longer pending (`invalid_state`, `details.current_status`).' },
    async handle({ params }, { rpc, call }) {
      return ok(await rpc.call(taskRpc.config, params, call));
    },
  }),
  defineRoute({
    method: 'GET',
    path: '/device/tasks',
    operationId: 'listDeviceTasks',
    summary: 'List the tasks of the calling device',
    description:
      'With a device token: the tasks of the workstation the device is currently bound to, runnable ones by default ' +
      '(`status=pending,ready,in_progress`; add `uploading` to see those waiting for an upload). Empty when the device ' +
      'is bound to no workstation.',
    tags,
    actors: ['device'],
    roles: [],
    query: DeviceTaskListQuery,
    responses: { 200: { description: 'A page of tasks.', schema: TaskPage } },
    async handle({ query }, { rpc, call, actor }) {
      return ok(await rpc.call(taskRpc.listForDevice, { device_id: actor.sub, query }, call));
    },
  }),
  deviceAction('ready', 'Report the task config loaded', 'pending → ready; repeats are no-ops.'),
  deviceAction('start', 'Report recording started', 'pending|ready → in_progress; repeats are no-ops.'),
  deviceAction(
    'finish',
    'Report recording finished',
    'pending|ready|in_progress → uploading. Idempotent: on an uploading or completed task it answers 200 and changes ' +
      'nothing; on a failed or cancelled task it is refused with 409.',
  ),
  defineRoute({
    method: 'POST',
    path: '/tasks/:id/fail',
    operationId: 'failTask',
    summary: 'Report the upload failed',
    description: 'in_progress|uploading → failed (terminal; no retry path). Repeats are no-ops.',
    tags,
    actors: ['user', 'device'],
    roles: WRITERS,
    params: TaskIdParams,
    body: FailTaskBody,
    responses: { 200: { description: 'The task; `changed: false` for a repeat.', schema: TaskActionResult } },
    errors: { 403: 'The device does not own the task (`not_owner`).', 409: 'Not allowed in the task’s status.' },
    async handle({ params, body }, { rpc, call, actor }) {
      const device_id = actingDevice(actor, body.device_id);
      return ok(
        await rpc.call(taskRpc.deviceAction, { id: params.id, action: 'fail', device_id, reason: body.reason }, call),
      );
    },
  }),
];
