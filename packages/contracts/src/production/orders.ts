import { z } from 'zod';
import { defineEvent, defineRpc } from '../messaging.js';
import { PageQuery, pageOf } from '../pagination.js';
import { commaList, Metadata, Name, Timestamp, Uuid } from '../primitives.js';

export const OrderStatus = z.enum(['created', 'in_progress', 'paused', 'completed', 'cancelled']);
export type OrderStatus = z.infer<typeof OrderStatus>;

export const OrderPriority = z.enum(['low', 'normal', 'high', 'urgent']);
export type OrderPriority = z.infer<typeof OrderPriority>;

/**
 * The manual and automatic status graph (DESIGN §5). `completed` and `cancelled` are terminal.
 * Automatic advance uses the created→in_progress and in_progress→completed edges.
 */
export const ORDER_TRANSITIONS: Readonly<Record<OrderStatus, readonly OrderStatus[]>> = {
  created: ['in_progress', 'paused', 'cancelled'],
  in_progress: ['completed', 'paused', 'cancelled'],
  paused: ['created', 'in_progress', 'cancelled'],
  completed: [],
  cancelled: [],
};

export function canTransitionOrder(from: OrderStatus, to: OrderStatus): boolean {
  return ORDER_TRANSITIONS[from].includes(to);
}

export const MAX_ORDER_TARGET = 1_000_000;

export const Order = z
  .object({
    id: Uuid,
    organization_id: Uuid,
    scene_id: Uuid,
    name: z.string(),
    target_count: z.number().int(),
    priority: OrderPriority,
    status: OrderStatus,
    deadline: Timestamp.nullable(),
    metadata: z.record(z.string(), z.unknown()),
    /** Live tasks of the order (the quota used: `target_count − task_count` can still be allocated). */
    task_count: z.number().int(),
    /** Completed tasks; the order completes when this reaches `target_count`. */
    completed_count: z.number().int(),
    created_at: Timestamp,
    updated_at: Timestamp,
  })
  .meta({ id: 'Order', description: 'A request for `target_count` episodes of one scene.' });
export type Order = z.infer<typeof Order>;

export const CreateOrderBody = z
  .object({
    scene_id: Uuid,
    name: Name,
    target_count: z.number().int().min(1).max(MAX_ORDER_TARGET),
    priority: OrderPriority.default('normal'),
    deadline: Timestamp.optional(),
    metadata: Metadata.default({}),
  })
  .strict()
  .meta({ id: 'CreateOrderBody' });
export type CreateOrderBody = z.infer<typeof CreateOrderBody>;

/** Manual status changes a client may request; `completed` is reached automatically. */
export const ManualOrderStatus = z.enum(['created', 'in_progress', 'paused', 'cancelled', 'completed']);

export const UpdateOrderBody = z
  .object({
    name: Name.optional(),
    target_count: z.number().int().min(1).max(MAX_ORDER_TARGET).optional(),
    priority: OrderPriority.optional(),
    deadline: Timestamp.nullable().optional(),
    metadata: Metadata.optional(),
    status: ManualOrderStatus.optional(),
  })
  .strict()
  .refine((b) => Object.keys(b).length > 0, 'at least one field must be given')
  .meta({ id: 'UpdateOrderBody' });
export type UpdateOrderBody = z.infer<typeof UpdateOrderBody>;

const orderFilters = {
  scene_id: Uuid.optional(),
  /** Case-insensitive substring of the name. */
  q: z.string().trim().min(1).max(200).optional(),
  created_from: Timestamp.optional(),
  created_to: Timestamp.optional(),
};

/** The list query as HTTP carries it: `status=created,paused`. */
export const OrderListQuery = PageQuery.extend({
  status: commaList(OrderStatus).optional(),
  priority: commaList(OrderPriority).optional(),
  ...orderFilters,
}).strict();

/** The same query once parsed, as it travels to the service. */
export const OrderListFilter = PageQuery.extend({
  status: z.array(OrderStatus).min(1).optional(),
  priority: z.array(OrderPriority).min(1).optional(),
  ...orderFilters,
}).strict();
export type OrderListQuery = z.infer<typeof OrderListFilter>;

export const OrderPage = pageOf(Order).meta({ id: 'OrderPage' });

export const OrderIdParams = z.object({ id: Uuid }).strict();

export const orderRpc = {
  create: defineRpc({
    subject: 'production.rpc.order.create',
    kind: 'command',
    request: z.object({ order: CreateOrderBody }),
    reply: Order,
  }),
  get: defineRpc({ subject: 'production.rpc.order.get', kind: 'query', request: z.object({ id: Uuid }), reply: Order }),
  list: defineRpc({
    subject: 'production.rpc.order.list',
    kind: 'query',
    request: z.object({ query: OrderListFilter }),
    reply: OrderPage,
  }),
  update: defineRpc({
    subject: 'production.rpc.order.update',
    kind: 'command',
    request: z.object({ id: Uuid, patch: UpdateOrderBody }),
    reply: Order,
  }),
  delete: defineRpc({
    subject: 'production.rpc.order.delete',
    kind: 'command',
    request: z.object({ id: Uuid }),
    reply: z.object({ id: Uuid, deleted_at: Timestamp }),
  }),
} as const;

export const orderEvents = {
  created: defineEvent({
    type: 'production.evt.order.created.v1',
    schema: z.object({ order: Order }),
    description: 'An order was placed.',
  }),
  updated: defineEvent({
    type: 'production.evt.order.updated.v1',
    schema: z.object({ order: Order, changed: z.array(z.string()) }),
    description: 'Order attributes changed (name, target, priority, deadline, metadata); `changed` lists them.',
  }),
  statusChanged: defineEvent({
    type: 'production.evt.order.status_changed.v1',
    schema: z.object({
      order: Order,
      from: OrderStatus,
      to: OrderStatus,
      cause: z.enum(['manual', 'automatic']),
    }),
    description: 'An order moved along its status graph, by a client or automatically from task counts.',
  }),
  deleted: defineEvent({
    type: 'production.evt.order.deleted.v1',
    schema: z.object({ order_id: Uuid, organization_id: Uuid, deleted_at: Timestamp }),
    description: 'An order was soft-deleted; its name may be reused.',
  }),
} as const;
