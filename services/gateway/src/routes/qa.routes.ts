import {
  ATTENTION_QA_STATUSES,
  CreateQaProfileBody,
  EpisodeIdParams,
  QaEpisode,
  QaEpisodeListQuery,
  QaEpisodePage,
  QaHistory,
  QaProfileIdParams,
  QaProfileListQuery,
  QaProfilePage,
  QaProfileRecord,
  QaReview,
  QaRun,
  qaEpisodeRpc,
  qaProfileRpc,
  ReviewBody,
  UpdateQaProfileBody,
} from '@ferry/contracts';
import { created, defineRoute, noContent, ok } from '../http/route.js';

const WRITERS = ['admin', 'operator'] as const;
const READERS = ['admin', 'operator', 'viewer'] as const;
const tags = ['QA'];

/**
 * A check streams the whole recording: a manual run may take a while for a multi-GB file. Above QA's own limit on a
 * check (QA_CHECK_TIMEOUT_MS, 4 minutes by default), so a check that never ends is answered by QA (502, nothing
 * recorded) rather than by this wait (504, "may still complete").
 */
const MANUAL_RUN_TIMEOUT_MS = 300_000;

export const qaRoutes = [
  defineRoute({
    method: 'GET',
    path: '/qa/episodes',
    operationId: 'listQaEpisodes',
    summary: 'List episodes by QA status',
    description:
      'Defaults to what needs a person’s attention (`pending_qa,failed,needs_inspection`); `status=all` lists every ' +
      'status. Filters: `scene_id`, `device_id`, `robot_type`, `check_failed` (a check the last run failed, e.g. ' +
      '`mcap_integrity`), `created_from`, `created_to`.',
    tags,
    roles: READERS,
    query: QaEpisodeListQuery,
    responses: { 200: { description: 'A page of episodes with their QA status.', schema: QaEpisodePage } },
    async handle({ query }, { rpc, call }) {
      const status = query.status === 'all' ? undefined : (query.status ?? [...ATTENTION_QA_STATUSES]);
      return ok(await rpc.call(qaEpisodeRpc.list, { query: { ...query, status } }, call));
    },
  }),
  defineRoute({
    method: 'GET',
    path: '/qa/episodes/:id',
    operationId: 'getQaEpisode',
    summary: 'Get an episode’s QA status',
    tags,
    roles: READERS,
    params: EpisodeIdParams,
    responses: { 200: { description: 'The episode as QA sees it.', schema: QaEpisode } },
    async handle({ params }, { rpc, call }) {
      return ok(await rpc.call(qaEpisodeRpc.get, params, call));
    },
  }),
  defineRoute({
    method: 'POST',
    path: '/episodes/:id/qa/runs',
    operationId: 'runEpisodeQa',
    summary: 'Run QA on an episode now',
    description:
      'Runs every check over the recording (one streaming pass) and answers the run with each check’s result. A status ' +
      'a person set (needs_inspection, inspector_approved, rejected) is kept. While another check holds the episode: ' +
      "409. When the recording cannot be read, or its read does not end within QA's time limit (`QA_CHECK_TIMEOUT_MS`, " +
      '4 minutes by default): **502** `storage_error` (`details.reason: "timed_out"` for the latter), nothing recorded.',
    tags,
    roles: WRITERS,
    params: EpisodeIdParams,
    responses: { 201: { description: 'The finished run.', schema: QaRun } },
    errors: {
      409: 'Another check is running on the episode (`conflict`).',
      502: 'The recording could not be read from storage, or not within the time limit (`storage_error`); nothing was recorded.',
    },
    async handle({ params }, { rpc, call }) {
      return created(await rpc.call(qaEpisodeRpc.run, params, call, { timeoutMs: MANUAL_RUN_TIMEOUT_MS }));
    },
  }),
  defineRoute({
    method: 'GET',
    path: '/episodes/:id/qa/runs',
    operationId: 'getEpisodeQaHistory',
    summary: 'An episode’s QA history',
    description: 'Every run (with every check’s result) and every review, newest first; never overwritten.',
    tags,
    roles: READERS,
    params: EpisodeIdParams,
    responses: { 200: { description: 'The history.', schema: QaHistory } },
    async handle({ params }, { rpc, call }) {
      return ok(await rpc.call(qaEpisodeRpc.history, params, call));
    },
  }),
  defineRoute({
    method: 'POST',
    path: '/episodes/:id/qa/review',
    operationId: 'reviewEpisode',
    summary: 'Review an episode',
    description:
      '`approve` → inspector_approved, `reject` → rejected, `needs_inspection`. Recorded (who, what, when, note) in the ' +
      'history; automated runs never override the status it sets.',
    tags,
    roles: WRITERS,
    params: EpisodeIdParams,
    body: ReviewBody,
    idempotent: true,
    responses: { 201: { description: 'The recorded review.', schema: QaReview } },
    async handle({ params, body }, { rpc, call }) {
      return created(await rpc.call(qaEpisodeRpc.review, { id: params.id, review: body }, call));
    },
  }),
  defineRoute({
    method: 'POST',
    path: '/qa/profiles',
    operationId: 'createQaProfile',
    summary: 'Create a QA profile',
    description:
      'Content rules (required topics, duration range, per-topic minimum rate and maximum gap) for episodes of a robot ' +
      'type and/or scene. The most specific profile applies; an episode with none skips the profile check.',
    tags,
    roles: ['admin'],
    body: CreateQaProfileBody,
    idempotent: true,
    responses: { 201: { description: 'Created.', schema: QaProfileRecord } },
    errors: { 409: 'A live profile already applies to this robot type and scene (`name_taken`).' },
    async handle({ body }, { rpc, call }) {
      const profile = await rpc.call(qaProfileRpc.create, { profile: body }, call);
      return created(profile, `/api/v1/qa/profiles/${profile.id}`);
    },
  }),
  defineRoute({
    method: 'GET',
    path: '/qa/profiles',
    operationId: 'listQaProfiles',
    summary: 'List QA profiles',
    tags,
    roles: READERS,
    query: QaProfileListQuery,
    responses: { 200: { description: 'A page of profiles.', schema: QaProfilePage } },
    async handle({ query }, { rpc, call }) {
      return ok(await rpc.call(qaProfileRpc.list, { query }, call));
    },
  }),
  defineRoute({
    method: 'GET',
    path: '/qa/profiles/:id',
    operationId: 'getQaProfile',
    summary: 'Get a QA profile',
    tags,
    roles: READERS,
    params: QaProfileIdParams,
    responses: { 200: { description: 'The profile.', schema: QaProfileRecord } },
    async handle({ params }, { rpc, call }) {
      return ok(await rpc.call(qaProfileRpc.get, params, call));
    },
  }),
  defineRoute({
    method: 'PATCH',
    path: '/qa/profiles/:id',
    operationId: 'updateQaProfile',
    summary: 'Update a QA profile',
    tags,
    roles: ['admin'],
    params: QaProfileIdParams,
    body: UpdateQaProfileBody,
    idempotent: true,
    responses: { 200: { description: 'The updated profile.', schema: QaProfileRecord } },
    async handle({ params, body }, { rpc, call }) {
      return ok(await rpc.call(qaProfileRpc.update, { id: params.id, patch: body }, call));
    },
  }),
  defineRoute({
    method: 'DELETE',
    path: '/qa/profiles/:id',
    operationId: 'deleteQaProfile',
    summary: 'Delete a QA profile',
    tags,
    roles: ['admin'],
    params: QaProfileIdParams,
    responses: { 204: { description: 'Deleted.' } },
    async handle({ params }, { rpc, call }) {
      await rpc.call(qaProfileRpc.delete, params, call);
      return noContent();
    },
  }),
];
