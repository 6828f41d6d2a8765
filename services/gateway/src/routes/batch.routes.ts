import {
  AdjustTaskGroupsBody,
  AdjustTaskGroupsResult,
  Batch,
  BatchIdParams,
  BatchListQuery,
  BatchPage,
  batchRpc,
  CreateBatchBody,
  DeleteBatchResult,
  Task,
  UpdateBatchBody,
} from '@ferry/contracts';
import { z } from 'zod';
import { created, defineRoute, ok } from '../http/route.js';

const WRITERS = ['admin', 'operator'] as const;
const READERS = ['admin', 'operator', 'viewer'] as const;
const tags = ['Batches'];

const CreatedBatch = z.object({ batch: Batch, tasks: z.array(Task) }).meta({ id: 'CreatedBatch' });

export const batchRoutes = [
  defineRoute({
    method: 'POST',
    path: '/batches',
    operationId: 'createBatch',
    summary: 'Create a batch with its tasks',
    description: 'One transaction; the order’s quota (target − live tasks) is checked under a lock on the order.',
    tags,
    roles: WRITERS,
    body: CreateBatchBody,
    idempotent: true,
    maxBodyBytes: 1024 * 1024,
    responses: { 201: { description: 'The batch and its tasks.', schema: CreatedBatch } },
    errors: {
      409: 'The order is completed or cancelled (`invalid_state`), or the quota would be exceeded (`quota_exceeded`).',
      422: 'The order or workstation does not exist or is not a current binding (`reference_not_found`).',
    },
    async handle({ body }, { rpc, call }) {
      const result = await rpc.call(batchRpc.create, { batch: body }, call);
      return created(result, `/api/v1/batches/${result.batch.id}`);
    },
  }),
  defineRoute({
    method: 'GET',
    path: '/batches',
    operationId: 'listBatches',
    summary: 'List batches',
    tags,
    roles: READERS,
    query: BatchListQuery,
    responses: { 200: { description: 'A page of batches.', schema: BatchPage } },
    async handle({ query }, { rpc, call }) {
      return ok(await rpc.call(batchRpc.list, { query }, call));
    },
  }),
  defineRoute({
    method: 'GET',
    path: '/batches/:id',
    operationId: 'getBatch',
    summary: 'Get a batch',
    tags,
    roles: READERS,
    params: BatchIdParams,
    responses: { 200: { description: 'The batch with task counts.', schema: Batch } },
    async handle({ params }, { rpc, call }) {
      return ok(await rpc.call(batchRpc.get, params, call));
    },
  }),
  defineRoute({
    method: 'PATCH',
    path: '/batches/:id',
    operationId: 'updateBatch',
    summary: 'Update or cancel a batch',
    description: '`status: cancelled` cancels its runnable tasks; uploads in flight still complete.',
    tags,
    roles: WRITERS,
    params: BatchIdParams,
    body: UpdateBatchBody,
    idempotent: true,
    responses: { 200: { description: 'The batch.', schema: Batch } },
    errors: { 409: 'Only pending or active batches can be cancelled (`invalid_transition`).' },
    async handle({ params, body }, { rpc, call }) {
      return ok(await rpc.call(batchRpc.update, { id: params.id, patch: body }, call));
    },
  }),
  defineRoute({
    method: 'PUT',
    path: '/batches/:id/task-groups',
    operationId: 'adjustTaskGroups',
    summary: 'Set the number of tasks per group',
    description: 'Declarative (safe to repeat): pending tasks are added or removed to reach each quantity.',
    tags,
    roles: WRITERS,
    params: BatchIdParams,
    body: AdjustTaskGroupsBody,
    responses: { 200: { description: 'What was added and removed.', schema: AdjustTaskGroupsResult } },
    errors: { 409: 'A group cannot go below its started tasks (`invalid_state`), or quota exceeded.' },
    async handle({ params, body }, { rpc, call }) {
      return ok(await rpc.call(batchRpc.adjust, { id: params.id, task_groups: body.task_groups }, call));
    },
  }),
  defineRoute({
    method: 'POST',
    path: '/batches/:id/recall',
    operationId: 'recallBatch',
    summary: 'Recall a batch',
    description: 'Cancels its runnable tasks and labels its episodes `recalled_batch`.',
    tags,
    roles: WRITERS,
    params: BatchIdParams,
    idempotent: true,
    responses: { 200: { description: 'The recalled batch.', schema: Batch } },
    errors: { 409: 'Only active or completed batches can be recalled (`invalid_transition`).' },
    async handle({ params }, { rpc, call }) {
      return ok(await rpc.call(batchRpc.recall, params, call));
    },
  }),
  defineRoute({
    method: 'DELETE',
    path: '/batches/:id',
    operationId: 'deleteBatch',
    summary: 'Delete a batch',
    description:
      'Only pending or cancelled batches, and never with an upload in flight. Without recordings the batch goes with ' +
      'its tasks; otherwise only its unfinished tasks go and the batch stays.',
    tags,
    roles: WRITERS,
    params: BatchIdParams,
    responses: { 200: { description: 'What was removed.', schema: DeleteBatchResult } },
    errors: { 409: 'Wrong status (`invalid_transition`) or uploads in flight (`invalid_state`).' },
    async handle({ params }, { rpc, call }) {
      return ok(await rpc.call(batchRpc.delete, params, call));
    },
  }),
];
