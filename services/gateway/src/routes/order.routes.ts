import {
  CreateOrderBody,
  Order,
  OrderIdParams,
  OrderListQuery,
  OrderPage,
  orderRpc,
  UpdateOrderBody,
} from '@ferry/contracts';
import { created, defineRoute, noContent, ok } from '../http/route.js';

const WRITERS = ['admin', 'operator'] as const;
const READERS = ['admin', 'operator', 'viewer'] as const;
const tags = ['Orders'];

export const orderRoutes = [
  defineRoute({
    method: 'POST',
    path: '/orders',
    operationId: 'createOrder',
    summary: 'Place an order',
    tags,
    roles: WRITERS,
    body: CreateOrderBody,
    idempotent: true,
    responses: { 201: { description: 'Created, in status `created`.', schema: Order } },
    errors: {
      409: 'A live order in the organization already has this name (`name_taken`).',
      422: 'The scene does not exist in the organization (`reference_not_found`).',
    },
    async handle({ body }, { rpc, call }) {
      const order = await rpc.call(orderRpc.create, { order: body }, call);
      return created(order, `/api/v1/orders/${order.id}`);
    },
  }),
  defineRoute({
    method: 'GET',
    path: '/orders',
    operationId: 'listOrders',
    summary: 'List orders',
    description: 'Newest first. `status` and `priority` take comma-separated lists.',
    tags,
    roles: READERS,
    query: OrderListQuery,
    responses: { 200: { description: 'A page of orders.', schema: OrderPage } },
    async handle({ query }, { rpc, call }) {
      return ok(await rpc.call(orderRpc.list, { query }, call));
    },
  }),
  defineRoute({
    method: 'GET',
    path: '/orders/:id',
    operationId: 'getOrder',
    summary: 'Get an order',
    tags,
    roles: READERS,
    params: OrderIdParams,
    responses: { 200: { description: 'The order.', schema: Order } },
    async handle({ params }, { rpc, call }) {
      return ok(await rpc.call(orderRpc.get, params, call));
    },
  }),
  defineRoute({
    method: 'PATCH',
    path: '/orders/:id',
    operationId: 'updateOrder',
    summary: 'Update an order',
    description:
      'Changes attributes and/or moves the status along its graph: created → in_progress → completed; ' +
      'created|in_progress ↔ paused; any non-terminal → cancelled.',
    tags,
    roles: WRITERS,
    params: OrderIdParams,
    body: UpdateOrderBody,
    idempotent: true,
    responses: { 200: { description: 'The updated order.', schema: Order } },
    errors: { 409: 'The name is taken, or the status change is not allowed (`invalid_transition`).' },
    async handle({ params, body }, { rpc, call }) {
      return ok(await rpc.call(orderRpc.update, { id: params.id, patch: body }, call));
    },
  }),
  defineRoute({
    method: 'DELETE',
    path: '/orders/:id',
    operationId: 'deleteOrder',
    summary: 'Delete an order',
    description: 'Soft delete; the name becomes free. Refused while batches, tasks or episodes refer to it.',
    tags,
    roles: WRITERS,
    params: OrderIdParams,
    responses: { 204: { description: 'Deleted.' } },
    errors: { 409: 'Still referenced (`referenced`; `details.referenced_by` names what).' },
    async handle({ params }, { rpc, call }) {
      await rpc.call(orderRpc.delete, params, call);
      return noContent();
    },
  }),
];
