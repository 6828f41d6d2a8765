import { z } from 'zod';
import { defineEvent, defineRpc } from '../messaging.js';
import { PageQuery, pageOf } from '../pagination.js';
import { commaList, Timestamp, Uuid } from '../primitives.js';
import { EpisodeLabel, QaStatus } from '../production/episodes.js';
import { DeviceId } from '../production/workstations.js';
import { RobotType } from '../transfer/devices.js';

/**
 * A bulk QA run's life: `queued` → `running` → `completed` | `failed` | `interrupted` (every worker
 * stopped heart-beating) | `cancelled`. An empty episode set is born `completed`.
 */
export const BulkRunStatus = z.enum(['queued', 'running', 'completed', 'failed', 'interrupted', 'cancelled']);
export type BulkRunStatus = z.infer<typeof BulkRunStatus>;
export const TERMINAL_BULK_RUN_STATUSES = ['completed', 'failed', 'interrupted', 'cancelled'] as const;
export const ACTIVE_BULK_RUN_STATUSES = ['queued', 'running'] as const;

export function isTerminalBulkRun(status: BulkRunStatus): boolean {
  return (TERMINAL_BULK_RUN_STATUSES as readonly string[]).includes(status);
}

/** Which episodes a bulk run covers (all of the organization's live episodes when empty). */
export const BulkQaFilters = z
  .object({
    created_from: Timestamp.optional(),
    created_to: Timestamp.optional(),
    /** Case-insensitive substring of the episode id, task id or device id. */
    q: z.string().trim().min(1).max(200).optional(),
    qa_status: z.array(QaStatus).min(1).max(7).optional(),
    scene_id: Uuid.optional(),
    order_id: Uuid.optional(),
    device_id: DeviceId.optional(),
    robot_type: RobotType.optional(),
    label: EpisodeLabel.optional(),
  })
  .strict()
  .meta({ id: 'BulkQaFilters' });
export type BulkQaFilters = z.infer<typeof BulkQaFilters>;

export const BulkQaBody = z
  .object({
    filters: BulkQaFilters.default({}),
    /** Absent or false: a preview (counts only, no side effects). True: start the run. */
    confirm: z.boolean().optional(),
  })
  .strict()
  .meta({ id: 'BulkQaBody' });
export type BulkQaBody = z.infer<typeof BulkQaBody>;

export const BulkQaPreview = z
  .object({
    status: z.literal('preview'),
    matched_count: z.number().int(),
    /** Episodes a run would check (matched minus skipped). */
    eligible_count: z.number().int(),
    skipped: z.object({
      /** Being checked right now (auto QA or a manual run). */
      already_running: z.number().int(),
      /** needs_inspection, inspector_approved, rejected: a person decided, so a run skips them (counted `skipped`). */
      protected_status: z.number().int(),
    }),
    warnings: z.array(z.string()),
  })
  .meta({ id: 'BulkQaPreview' });
export type BulkQaPreview = z.infer<typeof BulkQaPreview>;

/** The full state of a run: every progress event and every snapshot read carries all of it. */
export const BulkRun = z
  .object({
    run_id: Uuid,
    organization_id: Uuid,
    action: z.literal('bulk_qa'),
    status: BulkRunStatus,
    filters: BulkQaFilters,
    total_count: z.number().int(),
    /** Always `passed + qa_failed + processing_failed + skipped`. */
    processed_count: z.number().int(),
    passed_count: z.number().int(),
    qa_failed_count: z.number().int(),
    processing_failed_count: z.number().int(),
    skipped_count: z.number().int(),
    /** How many checked episodes failed each check (`mcap_integrity@1` → 3). */
    failures_by_check: z.record(z.string(), z.number().int()),
    /** Grows with every change of the counters or status: a reader keeps the highest it saw. */
    version: z.number().int(),
    created_by: z.string(),
    created_at: Timestamp,
    started_at: Timestamp.nullable(),
    updated_at: Timestamp,
    finished_at: Timestamp.nullable(),
    cancel_requested_at: Timestamp.nullable(),
    error_message: z.string().nullable(),
  })
  .meta({ id: 'BulkRun', description: 'A bulk QA run: its episode set was fixed when it started.' });
export type BulkRun = z.infer<typeof BulkRun>;

export const BulkRunIdParams = z.object({ id: Uuid }).strict();
export const BulkRunListQuery = PageQuery.extend({ status: commaList(BulkRunStatus).optional() }).strict();
export const BulkRunListFilter = PageQuery.extend({ status: z.array(BulkRunStatus).min(1).optional() }).strict();
export type BulkRunListFilter = z.infer<typeof BulkRunListFilter>;
export const BulkRunPage = pageOf(BulkRun).meta({ id: 'BulkRunPage' });

/** A short-lived, run-scoped credential for an EventSource (which cannot send an Authorization header). */
export const StreamTicket = z
  .object({
    ticket: z.string(),
    expires_at: Timestamp,
    /** The events URL with the ticket, ready for `new EventSource(url)`. */
    events_url: z.string(),
  })
  .meta({ id: 'StreamTicket' });

export const bulkRunRpc = {
  preview: defineRpc({
    subject: 'qa.rpc.bulk_run.preview',
    kind: 'query',
    request: z.object({ filters: BulkQaFilters }),
    reply: BulkQaPreview,
  }),
  /** 409 `bulk_run_active` (with the active run) when the organization already has one queued or running. */
  execute: defineRpc({
    subject: 'qa.rpc.bulk_run.execute',
    kind: 'command',
    request: z.object({ filters: BulkQaFilters }),
    reply: BulkRun,
  }),
  get: defineRpc({ subject: 'qa.rpc.bulk_run.get', kind: 'query', request: z.object({ id: Uuid }), reply: BulkRun }),
  current: defineRpc({
    subject: 'qa.rpc.bulk_run.current',
    kind: 'query',
    request: z.object({}),
    reply: z.object({ run: BulkRun.nullable() }),
  }),
  list: defineRpc({
    subject: 'qa.rpc.bulk_run.list',
    kind: 'query',
    request: z.object({ query: BulkRunListFilter }),
    reply: BulkRunPage,
  }),
  cancel: defineRpc({
    subject: 'qa.rpc.bulk_run.cancel',
    kind: 'command',
    request: z.object({ id: Uuid }),
    reply: BulkRun,
  }),
} as const;

/**
 * Per-run subjects (`….<run_id>`), so the SSE relay follows one run with one filter,
 * `qa.evt.bulk_run.*.v1.<run_id>` (nats-server 2.9 has one filter subject per consumer).
 */
export const bulkRunEvents = {
  progress: defineEvent({
    type: 'qa.evt.bulk_run.progress.v1',
    schema: z.object({ run: BulkRun }),
    perAggregateSubject: true,
    description:
      'A bulk run moved (started, counters changed): the full snapshot, at most 2 per second per run. Subject suffix: the run id.',
  }),
  finished: defineEvent({
    type: 'qa.evt.bulk_run.finished.v1',
    schema: z.object({ run: BulkRun }),
    perAggregateSubject: true,
    description:
      'A bulk run ended (`run.status`: completed, failed, interrupted or cancelled): exactly one per run. Subject suffix: the run id.',
  }),
} as const;
