import { Episode, EpisodeIdParams, EpisodeListQuery, EpisodePage, episodeRpc } from '@ferry/contracts';
import { defineRoute, ok } from '../http/route.js';

const READERS = ['admin', 'operator', 'viewer'] as const;
const tags = ['Episodes'];

export const episodeRoutes = [
  defineRoute({
    method: 'GET',
    path: '/episodes',
    operationId: 'listEpisodes',
    summary: 'List episodes',
    description:
      'Filters: scene, order, batch, workstation, task, device, QA status (comma list), label, creation range.',
    tags,
    roles: READERS,
    query: EpisodeListQuery,
    responses: { 200: { description: 'A page of episodes.', schema: EpisodePage } },
    async handle({ query }, { rpc, call }) {
      return ok(await rpc.call(episodeRpc.list, { query }, call));
    },
  }),
  defineRoute({
    method: 'GET',
    path: '/episodes/:id',
    operationId: 'getEpisode',
    summary: 'Get an episode',
    tags,
    roles: READERS,
    params: EpisodeIdParams,
    responses: { 200: { description: 'The episode.', schema: Episode } },
    async handle({ params }, { rpc, call }) {
      return ok(await rpc.call(episodeRpc.get, params, call));
    },
  }),
];
