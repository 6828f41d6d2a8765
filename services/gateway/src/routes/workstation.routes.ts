import {
  CreateWorkstationBody,
  UpdateWorkstationBody,
  Workstation,
  WorkstationIdParams,
  WorkstationListQuery,
  WorkstationPage,
  workstationRpc,
} from '@ferry/contracts';
import { created, defineRoute, noContent, ok } from '../http/route.js';

const WRITERS = ['admin', 'operator'] as const;
const READERS = ['admin', 'operator', 'viewer'] as const;
const tags = ['Workstations'];

export const workstationRoutes = [
  defineRoute({
    method: 'POST',
    path: '/workstations',
    operationId: 'createWorkstation',
    summary: 'Pair a device with a data collector',
    tags,
    roles: WRITERS,
    body: CreateWorkstationBody,
    idempotent: true,
    responses: { 201: { description: 'The new binding.', schema: Workstation } },
    errors: { 409: 'The device or collector is already in a current binding (`binding_taken`).' },
    async handle({ body }, { rpc, call }) {
      const ws = await rpc.call(workstationRpc.create, { workstation: body }, call);
      return created(ws, `/api/v1/workstations/${ws.id}`);
    },
  }),
  defineRoute({
    method: 'GET',
    path: '/workstations',
    operationId: 'listWorkstations',
    summary: 'List workstations',
    description: 'Current bindings; `include_history=true` adds superseded and unbound ones.',
    tags,
    roles: READERS,
    query: WorkstationListQuery,
    responses: { 200: { description: 'A page of workstations.', schema: WorkstationPage } },
    async handle({ query }, { rpc, call }) {
      return ok(await rpc.call(workstationRpc.list, { query }, call));
    },
  }),
  defineRoute({
    method: 'GET',
    path: '/workstations/:id',
    operationId: 'getWorkstation',
    summary: 'Get a workstation binding (current or superseded)',
    tags,
    roles: READERS,
    params: WorkstationIdParams,
    responses: { 200: { description: 'The binding.', schema: Workstation } },
    async handle({ params }, { rpc, call }) {
      return ok(await rpc.call(workstationRpc.get, params, call));
    },
  }),
  defineRoute({
    method: 'PATCH',
    path: '/workstations/:id',
    operationId: 'updateWorkstation',
    summary: 'Update or re-pair a workstation',
    description:
      'A new device_id or collector_operator_id re-pairs: the answer is a new binding (new id) and this one becomes ' +
      'superseded, keeping its tasks and episodes. Re-pairing is refused while batches are open.',
    tags,
    roles: WRITERS,
    params: WorkstationIdParams,
    body: UpdateWorkstationBody,
    idempotent: true,
    responses: { 200: { description: 'The (possibly new) current binding.', schema: Workstation } },
    errors: { 409: 'Binding taken, superseded binding, or open batches (`invalid_state`).' },
    async handle({ params, body }, { rpc, call }) {
      return ok(await rpc.call(workstationRpc.update, { id: params.id, patch: body }, call));
    },
  }),
  defineRoute({
    method: 'DELETE',
    path: '/workstations/:id',
    operationId: 'unbindWorkstation',
    summary: 'Unbind a workstation',
    tags,
    roles: WRITERS,
    params: WorkstationIdParams,
    responses: { 204: { description: 'Unbound; the device and collector can be paired again.' } },
    errors: { 409: 'The workstation has pending or active batches (`invalid_state`, `details.open_batches`).' },
    async handle({ params }, { rpc, call }) {
      await rpc.call(workstationRpc.unbind, params, call);
      return noContent();
    },
  }),
];
