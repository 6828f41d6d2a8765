import { z } from 'zod';
import { defineEvent, defineRpc } from '../messaging.js';
import { PageQuery, pageOf } from '../pagination.js';
import { Metadata, Name, Timestamp, Uuid } from '../primitives.js';

/** A device id as robots report it (Keystone `robots.device_id`), e.g. `arm-0042`. */
export const DeviceId = z
  .string()
  .trim()
  .min(1)
  .max(200)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:-]*$/, 'letters, digits and . _ : - only');

/** The data collector's operator id (their login in Keystone). */
export const OperatorId = DeviceId;

export const WorkstationStatus = z.enum(['active', 'inactive', 'break', 'offline']);
export type WorkstationStatus = z.infer<typeof WorkstationStatus>;

export const Workstation = z
  .object({
    /** The id of this binding version; re-pairing creates a new one and keeps this one on old tasks. */
    id: Uuid,
    organization_id: Uuid,
    name: z.string(),
    device_id: z.string(),
    collector_operator_id: z.string(),
    collector_name: z.string().nullable(),
    status: WorkstationStatus,
    /** False for a superseded binding version or an unbound workstation. */
    is_current: z.boolean(),
    superseded_by: Uuid.nullable(),
    metadata: z.record(z.string(), z.unknown()),
    created_at: Timestamp,
    updated_at: Timestamp,
  })
  .meta({ id: 'Workstation', description: 'One robot (device) paired with one data collector.' });
export type Workstation = z.infer<typeof Workstation>;

export const CreateWorkstationBody = z
  .object({
    name: Name.optional(),
    device_id: DeviceId,
    collector_operator_id: OperatorId,
    collector_name: Name.optional(),
    metadata: Metadata.default({}),
  })
  .strict()
  .meta({ id: 'CreateWorkstationBody' });
export type CreateWorkstationBody = z.infer<typeof CreateWorkstationBody>;

export const UpdateWorkstationBody = z
  .object({
    name: Name.optional(),
    device_id: DeviceId.optional(),
    collector_operator_id: OperatorId.optional(),
    collector_name: Name.nullable().optional(),
    status: WorkstationStatus.optional(),
    metadata: Metadata.optional(),
  })
  .strict()
  .refine((b) => Object.keys(b).length > 0, 'at least one field must be given')
  .meta({
    id: 'UpdateWorkstationBody',
    description: 'Changing device_id or collector_operator_id re-pairs: a new binding version (new id) is returned.',
  });
export type UpdateWorkstationBody = z.infer<typeof UpdateWorkstationBody>;

const workstationFilters = {
  device_id: DeviceId.optional(),
  collector_operator_id: OperatorId.optional(),
  /** Include superseded and unbound binding versions. Default false. */
  include_history: z
    .enum(['true', 'false'])
    .default('false')
    .transform((v) => v === 'true'),
};

export const WorkstationListQuery = PageQuery.extend(workstationFilters).strict();
export const WorkstationListFilter = PageQuery.extend({
  ...workstationFilters,
  include_history: z.boolean().default(false),
}).strict();
export type WorkstationListFilter = z.infer<typeof WorkstationListFilter>;

export const WorkstationPage = pageOf(Workstation).meta({ id: 'WorkstationPage' });
export const WorkstationIdParams = z.object({ id: Uuid }).strict();

export const workstationRpc = {
  create: defineRpc({
    subject: 'production.rpc.workstation.create',
    kind: 'command',
    request: z.object({ workstation: CreateWorkstationBody }),
    reply: Workstation,
  }),
  get: defineRpc({
    subject: 'production.rpc.workstation.get',
    kind: 'query',
    request: z.object({ id: Uuid }),
    reply: Workstation,
  }),
  list: defineRpc({
    subject: 'production.rpc.workstation.list',
    kind: 'query',
    request: z.object({ query: WorkstationListFilter }),
    reply: WorkstationPage,
  }),
  update: defineRpc({
    subject: 'production.rpc.workstation.update',
    kind: 'command',
    request: z.object({ id: Uuid, patch: UpdateWorkstationBody }),
    reply: Workstation,
  }),
  unbind: defineRpc({
    subject: 'production.rpc.workstation.unbind',
    kind: 'command',
    request: z.object({ id: Uuid }),
    reply: Workstation,
  }),
} as const;

export const workstationEvents = {
  bound: defineEvent({
    type: 'production.evt.workstation.bound.v1',
    schema: z.object({ workstation: Workstation, supersedes: Uuid.nullable() }),
    description:
      'A device was paired with a collector: a new workstation, or a re-pairing that supersedes another binding.',
  }),
  updated: defineEvent({
    type: 'production.evt.workstation.updated.v1',
    schema: z.object({ workstation: Workstation, changed: z.array(z.string()) }),
    description: 'A workstation’s name, status or metadata changed (the binding did not).',
  }),
  unbound: defineEvent({
    type: 'production.evt.workstation.unbound.v1',
    schema: z.object({ workstation: Workstation }),
    description: 'A workstation binding was ended; its device and collector may be paired again.',
  }),
} as const;
