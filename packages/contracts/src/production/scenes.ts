import { z } from 'zod';
import { defineEvent, defineRpc } from '../messaging.js';
import { PageQuery, pageOf } from '../pagination.js';
import { Description, Name, Timestamp, Uuid } from '../primitives.js';

export const Scene = z
  .object({
    id: Uuid,
    organization_id: Uuid,
    name: z.string(),
    description: z.string().nullable(),
    created_at: Timestamp,
    updated_at: Timestamp,
  })
  .meta({ id: 'Scene', description: 'A recording setting (e.g. kitchen-pick); orders record episodes of one scene.' });
export type Scene = z.infer<typeof Scene>;

export const CreateSceneBody = z
  .object({ name: Name, description: Description.optional() })
  .strict()
  .meta({ id: 'CreateSceneBody' });
export type CreateSceneBody = z.infer<typeof CreateSceneBody>;

export const UpdateSceneBody = z
  .object({ name: Name.optional(), description: Description.nullable().optional() })
  .strict()
  .refine((b) => Object.keys(b).length > 0, 'at least one field must be given')
  .meta({ id: 'UpdateSceneBody' });
export type UpdateSceneBody = z.infer<typeof UpdateSceneBody>;

export const SceneListQuery = PageQuery.extend({
  /** Case-insensitive substring of the name. */
  q: z.string().trim().min(1).max(200).optional(),
}).strict();
export type SceneListQuery = z.infer<typeof SceneListQuery>;

export const ScenePage = pageOf(Scene).meta({ id: 'ScenePage' });

export const SceneIdParams = z.object({ id: Uuid }).strict();

export const sceneRpc = {
  create: defineRpc({
    subject: 'production.rpc.scene.create',
    kind: 'command',
    request: z.object({ scene: CreateSceneBody }),
    reply: Scene,
  }),
  get: defineRpc({ subject: 'production.rpc.scene.get', kind: 'query', request: z.object({ id: Uuid }), reply: Scene }),
  list: defineRpc({
    subject: 'production.rpc.scene.list',
    kind: 'query',
    request: z.object({ query: SceneListQuery }),
    reply: ScenePage,
  }),
  update: defineRpc({
    subject: 'production.rpc.scene.update',
    kind: 'command',
    request: z.object({ id: Uuid, patch: UpdateSceneBody }),
    reply: Scene,
  }),
  delete: defineRpc({
    subject: 'production.rpc.scene.delete',
    kind: 'command',
    request: z.object({ id: Uuid }),
    reply: z.object({ id: Uuid, deleted_at: Timestamp }),
  }),
} as const;

const SceneEventPayload = z.object({ scene: Scene });

export const sceneEvents = {
  created: defineEvent({
    type: 'production.evt.scene.created.v1',
    schema: SceneEventPayload,
    description: 'A scene was created.',
  }),
  updated: defineEvent({
    type: 'production.evt.scene.updated.v1',
    schema: SceneEventPayload.extend({ changed: z.array(z.string()) }),
    description: 'A scene was renamed or its description changed; `changed` lists the fields.',
  }),
  deleted: defineEvent({
    type: 'production.evt.scene.deleted.v1',
    schema: z.object({ scene_id: Uuid, organization_id: Uuid, deleted_at: Timestamp }),
    description: 'A scene was soft-deleted; its name may be reused.',
  }),
} as const;
