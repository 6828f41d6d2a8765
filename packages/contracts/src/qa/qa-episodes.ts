import { z } from 'zod';
import { defineEvent, defineRpc } from '../messaging.js';
import { PageQuery, pageOf } from '../pagination.js';
import { commaList, Name, Timestamp, Uuid } from '../primitives.js';
import { QaStatus } from '../production/episodes.js';
import { DeviceId } from '../production/workstations.js';
import { RobotType } from '../transfer/devices.js';
import { UploadedFile } from '../transfer/uploads.js';
import { QaProfile } from './profiles.js';

/** Statuses a person sets; automated runs (auto, manual, bulk) never change them. */
export const PROTECTED_QA_STATUSES = ['needs_inspection', 'inspector_approved', 'rejected'] as const;
/** Whether a person set `status` (one of PROTECTED_QA_STATUSES): automated runs keep or skip it. */
export function isProtectedQaStatus(status: string): boolean {
  return (PROTECTED_QA_STATUSES as readonly string[]).includes(status);
}
/**
 * What the QA list shows by default: what needs a person's attention. `pending_qa` belongs: it has no verdict yet
 * (nobody may take it as checked), and it is where an episode automated QA could not check stays; `qa_running` does
 * not (a check holds it right now and will give it a verdict); decided statuses never do.
 */
export const ATTENTION_QA_STATUSES = ['pending_qa', 'failed', 'needs_inspection'] as const;

export const QaTrigger = z.enum(['auto', 'manual', 'bulk']);
export type QaTrigger = z.infer<typeof QaTrigger>;

export const QaCheckResult = z
  .object({
    /** `name@version` identifies the check's logic. */
    name: z.string(),
    version: z.number().int(),
    status: z.enum(['passed', 'failed', 'skipped']),
    passed: z.boolean(),
    score: z.number(),
    /** Human text naming exactly what is wrong and where (chunk, offset, topic). */
    details: z.string(),
    metrics: z.record(z.string(), z.unknown()),
  })
  .meta({ id: 'QaCheckResult' });
export type QaCheckResult = z.infer<typeof QaCheckResult>;

export const QaRun = z
  .object({
    id: Uuid,
    episode_id: Uuid,
    organization_id: Uuid,
    suite_version: z.string(),
    trigger: QaTrigger,
    bulk_run_id: Uuid.nullable(),
    requested_by: z.string(),
    passed: z.boolean(),
    score: z.number(),
    /** The episode's QA status after this run (a protected status is kept). */
    status_after: QaStatus,
    bytes_read: z.number().int(),
    duration_ms: z.number().int(),
    started_at: Timestamp,
    finished_at: Timestamp,
    results: z.array(QaCheckResult),
  })
  .meta({ id: 'QaRun', description: 'One run of the QA suite over an episode; never overwritten.' });
export type QaRun = z.infer<typeof QaRun>;

export const ReviewDecision = z.enum(['approve', 'reject', 'needs_inspection']);
export const QaReview = z
  .object({
    id: Uuid,
    episode_id: Uuid,
    decision: ReviewDecision,
    note: z.string().nullable(),
    reviewer: z.string(),
    from_status: QaStatus,
    to_status: QaStatus,
    created_at: Timestamp,
  })
  .meta({ id: 'QaReview', description: 'A person’s decision on an episode.' });
export type QaReview = z.infer<typeof QaReview>;

export const QaHistoryEntry = z
  .discriminatedUnion('kind', [
    z.object({ kind: z.literal('run'), at: Timestamp, run: QaRun }),
    z.object({ kind: z.literal('review'), at: Timestamp, review: QaReview }),
  ])
  .meta({ id: 'QaHistoryEntry' });
export const QaHistory = z.object({ items: z.array(QaHistoryEntry) }).meta({ id: 'QaHistory' });

export const QaEpisode = z
  .object({
    id: Uuid,
    organization_id: Uuid,
    task_id: Uuid,
    order_id: Uuid,
    scene_id: Uuid,
    device_id: z.string(),
    robot_type: z.string().nullable(),
    qa_status: QaStatus,
    qa_score: z.number().nullable(),
    /** Checks (`name@version`) that failed in the last run. */
    failed_checks: z.array(z.string()),
    last_run_id: Uuid.nullable(),
    files: z.object({ mcap: UploadedFile, sidecar: UploadedFile.nullable() }),
    labels: z.array(z.string()),
    created_at: Timestamp,
    status_changed_at: Timestamp,
  })
  .meta({ id: 'QaEpisode', description: 'An episode as QA sees it: its QA status and last results.' });
export type QaEpisode = z.infer<typeof QaEpisode>;

const qaEpisodeFilters = {
  scene_id: Uuid.optional(),
  device_id: DeviceId.optional(),
  robot_type: RobotType.optional(),
  /** Episodes whose last run failed this check (`mcap_integrity` or `mcap_integrity@1`). */
  check_failed: z
    .string()
    .min(1)
    .max(100)
    .regex(/^[a-z0-9_]+(@[0-9]+)?$/)
    .optional(),
  created_from: Timestamp.optional(),
  created_to: Timestamp.optional(),
};
/** `status` defaults to what needs attention (pending_qa, failed, needs_inspection); `all` lists every status. */
export const QaEpisodeListQuery = PageQuery.extend({
  ...qaEpisodeFilters,
  status: z.union([z.literal('all'), commaList(QaStatus)]).optional(),
}).strict();
export const QaEpisodeListFilter = PageQuery.extend({
  ...qaEpisodeFilters,
  status: z.array(QaStatus).min(1).optional(),
}).strict();
export type QaEpisodeListFilter = z.infer<typeof QaEpisodeListFilter>;
export const QaEpisodePage = pageOf(QaEpisode).meta({ id: 'QaEpisodePage' });

export const ReviewBody = z
  .object({ decision: ReviewDecision, note: z.string().trim().min(1).max(2000).optional() })
  .strict()
  .meta({
    id: 'ReviewBody',
    description: '`approve` → inspector_approved, `reject` → rejected, `needs_inspection` → needs_inspection.',
  });

// ------------------------------------------------------------------------------------------ profiles

export const QaProfileRecord = z
  .object({
    id: Uuid,
    organization_id: Uuid,
    name: z.string(),
    /** Applies to episodes of this robot type (null: any). */
    robot_type: z.string().nullable(),
    /** Applies to episodes of this scene (null: any). */
    scene_id: Uuid.nullable(),
    rules: QaProfile,
    created_at: Timestamp,
    updated_at: Timestamp,
  })
  .meta({
    id: 'QaProfileRecord',
    description:
      'Content rules for the profile check. The most specific live profile applies: robot type and scene, then robot ' +
      'type, then scene; an episode with none skips the check.',
  });
export type QaProfileRecord = z.infer<typeof QaProfileRecord>;

export const CreateQaProfileBody = z
  .object({
    name: Name,
    robot_type: RobotType.optional(),
    scene_id: Uuid.optional(),
    rules: QaProfile,
  })
  .strict()
  .refine((b) => b.robot_type !== undefined || b.scene_id !== undefined, 'give a robot_type, a scene_id or both')
  .meta({ id: 'CreateQaProfileBody' });
export const UpdateQaProfileBody = z
  .object({ name: Name.optional(), rules: QaProfile.optional() })
  .strict()
  .refine((b) => Object.keys(b).length > 0, 'at least one field must be given')
  .meta({ id: 'UpdateQaProfileBody' });
export const QaProfileIdParams = z.object({ id: Uuid }).strict();
export const QaProfileListQuery = PageQuery.extend({ robot_type: RobotType.optional() }).strict();
export type QaProfileListQuery = z.infer<typeof QaProfileListQuery>;
export const QaProfilePage = pageOf(QaProfileRecord).meta({ id: 'QaProfilePage' });

// ----------------------------------------------------------------------------------------------- rpc

export const qaEpisodeRpc = {
  list: defineRpc({
    subject: 'qa.rpc.episode.list',
    kind: 'query',
    request: z.object({ query: QaEpisodeListFilter }),
    reply: QaEpisodePage,
  }),
  get: defineRpc({ subject: 'qa.rpc.episode.get', kind: 'query', request: z.object({ id: Uuid }), reply: QaEpisode }),
  history: defineRpc({
    subject: 'qa.rpc.episode.history',
    kind: 'query',
    request: z.object({ id: Uuid }),
    reply: QaHistory,
  }),
  /** Runs the suite now and answers its run; `storage_error` (502) when the recording cannot be read. */
  run: defineRpc({ subject: 'qa.rpc.episode.run', kind: 'work', request: z.object({ id: Uuid }), reply: QaRun }),
  review: defineRpc({
    subject: 'qa.rpc.episode.review',
    kind: 'command',
    request: z.object({ id: Uuid, review: ReviewBody }),
    reply: QaReview,
  }),
} as const;

export const qaProfileRpc = {
  create: defineRpc({
    subject: 'qa.rpc.profile.create',
    kind: 'command',
    request: z.object({ profile: CreateQaProfileBody }),
    reply: QaProfileRecord,
  }),
  list: defineRpc({
    subject: 'qa.rpc.profile.list',
    kind: 'query',
    request: z.object({ query: QaProfileListQuery }),
    reply: QaProfilePage,
  }),
  get: defineRpc({
    subject: 'qa.rpc.profile.get',
    kind: 'query',
    request: z.object({ id: Uuid }),
    reply: QaProfileRecord,
  }),
  update: defineRpc({
    subject: 'qa.rpc.profile.update',
    kind: 'command',
    request: z.object({ id: Uuid, patch: UpdateQaProfileBody }),
    reply: QaProfileRecord,
  }),
  delete: defineRpc({
    subject: 'qa.rpc.profile.delete',
    kind: 'command',
    request: z.object({ id: Uuid }),
    reply: z.object({ id: Uuid, deleted_at: Timestamp }),
  }),
} as const;

// -------------------------------------------------------------------------------------------- events

export const QaStatusCause = z.enum(['auto', 'manual', 'bulk', 'review', 'claim_released']);

/**
 * Why QA asked itself to run auto QA again: `stalled`, an episode still `pending_qa` long after anything touched it
 * (auto QA gave up after max_deliver, or never got to it); `robot_type_known`, an episode auto QA checked before QA
 * knew its device's robot type, to which a profile of that robot type applies.
 */
export const AutoCheckReason = z.enum(['stalled', 'robot_type_known']);
export type AutoCheckReason = z.infer<typeof AutoCheckReason>;

export const qaEpisodeEvents = {
  /**
   * Every change of an episode's QA status, claims included (`qa_running`): what production's read copy
   * follows. `checked` below carries the results of a finished run.
   */
  statusChanged: defineEvent({
    type: 'qa.evt.episode.status_changed.v1',
    schema: z.object({
      episode_id: Uuid,
      organization_id: Uuid,
      from: QaStatus,
      to: QaStatus,
      cause: QaStatusCause,
      run_id: Uuid.nullable(),
      changed_at: Timestamp,
    }),
    description:
      'An episode’s QA status changed (a check claimed it, finished, a person reviewed it, or a dead check’s claim was released).',
  }),
  /** QA's own request to run auto QA over an episode again; only QA consumes it (`qa__auto-recheck`). */
  autoCheckRequested: defineEvent({
    type: 'qa.evt.episode.auto_check_requested.v1',
    schema: z.object({
      episode_id: Uuid,
      organization_id: Uuid,
      reason: AutoCheckReason,
      /** How many times this episode was re-driven so far, this request included (0 for `robot_type_known`). */
      redrive: z.number().int().min(0),
      requested_at: Timestamp,
    }),
    description:
      'QA asks itself to run auto QA over an episode again: one auto QA gave up on (`stalled`), or one checked before ' +
      'its robot type was known (`robot_type_known`).',
  }),
  checked: defineEvent({
    type: 'qa.evt.episode.checked.v1',
    schema: z.object({ run: QaRun, qa_status: QaStatus }),
    description:
      'A run of the QA suite finished over an episode: every check’s result, and the episode’s status after it.',
  }),
} as const;
