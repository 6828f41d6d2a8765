import {
  CreateSceneBody,
  Scene,
  SceneIdParams,
  SceneListQuery,
  ScenePage,
  sceneRpc,
  UpdateSceneBody,
} from '@ferry/contracts';
import { created, defineRoute, noContent, ok } from '../http/route.js';

const WRITERS = ['admin', 'operator'] as const;
const READERS = ['admin', 'operator', 'viewer'] as const;
const tags = ['Scenes'];

export const sceneRoutes = [
  defineRoute({
    method: 'POST',
    path: '/scenes',
    operationId: 'createScene',
    summary: 'Create a scene',
    tags,
    roles: WRITERS,
    body: CreateSceneBody,
    idempotent: true,
    responses: { 201: { description: 'Created.', schema: Scene } },
    errors: { 409: 'A live scene in the organization already has this name (`name_taken`).' },
    async handle({ body }, { rpc, call }) {
      const scene = await rpc.call(sceneRpc.create, { scene: body }, call);
      return created(scene, `/api/v1/scenes/${scene.id}`);
    },
  }),
  defineRoute({
    method: 'GET',
    path: '/scenes',
    operationId: 'listScenes',
    summary: 'List scenes',
    tags,
    roles: READERS,
    query: SceneListQuery,
    responses: { 200: { description: 'A page of scenes, newest first.', schema: ScenePage } },
    async handle({ query }, { rpc, call }) {
      return ok(await rpc.call(sceneRpc.list, { query }, call));
    },
  }),
  defineRoute({
    method: 'GET',
    path: '/scenes/:id',
    operationId: 'getScene',
    summary: 'Get a scene',
    tags,
    roles: READERS,
    params: SceneIdParams,
    responses: { 200: { description: 'The scene.', schema: Scene } },
    async handle({ params }, { rpc, call }) {
      return ok(await rpc.call(sceneRpc.get, params, call));
    },
  }),
  defineRoute({
    method: 'PATCH',
    path: '/scenes/:id',
    operationId: 'updateScene',
    summary: 'Update a scene',
    tags,
    roles: WRITERS,
    params: SceneIdParams,
    body: UpdateSceneBody,
    idempotent: true,
    responses: { 200: { description: 'The updated scene.', schema: Scene } },
    errors: { 409: 'The new name is taken (`name_taken`).' },
    async handle({ params, body }, { rpc, call }) {
      return ok(await rpc.call(sceneRpc.update, { id: params.id, patch: body }, call));
    },
  }),
  defineRoute({
    method: 'DELETE',
    path: '/scenes/:id',
    operationId: 'deleteScene',
    summary: 'Delete a scene',
    description: 'Soft delete; the name becomes free. Refused while live orders use the scene.',
    tags,
    roles: WRITERS,
    params: SceneIdParams,
    responses: { 204: { description: 'Deleted.' } },
    errors: { 409: 'Live orders still use the scene (`referenced`; `details.referenced_by` lists them).' },
    async handle({ params }, { rpc, call }) {
      await rpc.call(sceneRpc.delete, params, call);
      return noContent();
    },
  }),
];
