import type { BulkRunStatus, QaStatus } from '@ferry/contracts';
import type { MessagingTables } from '@ferry/platform';
import type { ColumnType, Generated } from 'kysely';

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;
type NullableTimestamp = ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
type Json<T> = ColumnType<T, string, string>;
/** int8 comes back from node-postgres as a string. */
type Int8 = ColumnType<string, number, number>;

export interface DevicesTable {
  organization_id: string;
  device_id: string;
  robot_type: string | null;
  expected_topics: ColumnType<string[], string[] | undefined, string[]>;
  deleted: ColumnType<boolean, boolean | undefined, boolean>;
  updated_at: Timestamp;
}

export interface EpisodesTable {
  id: string;
  organization_id: string;
  task_id: string;
  order_id: string;
  scene_id: string;
  batch_id: string;
  device_id: string;
  robot_type: string | null;
  upload_id: string;
  mcap: Json<{ object_key: string; size_bytes: number; sha256: string }>;
  sidecar: ColumnType<{ object_key: string; size_bytes: number; sha256: string } | null, string | null, string | null>;
  recording: ColumnType<Record<string, unknown> | null, string | null, string | null>;
  labels: ColumnType<string[], string[] | undefined, string[]>;
  episode_created_at: Timestamp;
  /** Production's updated_at of the episode as last projected (orders episode.updated events). */
  source_updated_at: NullableTimestamp;
  qa_status: ColumnType<QaStatus, QaStatus | undefined, QaStatus>;
  status_changed_at: Timestamp;
  qa_score: number | null;
  failed_checks: ColumnType<string[], string[] | undefined, string[]>;
  last_run_id: string | null;
  claim_id: string | null;
  claimed_by: string | null;
  claim_expires_at: NullableTimestamp;
  status_before_claim: QaStatus | null;
  /** When the claim sweeper last asked auto QA again for this episode (it was stalled), and how many times. */
  redriven_at: NullableTimestamp;
  redrive_count: ColumnType<number, number | undefined, number>;
  created_at: Generated<Date>;
}

export interface RunsTable {
  id: string;
  episode_id: string;
  organization_id: string;
  suite_version: string;
  trigger: 'auto' | 'manual' | 'bulk';
  bulk_run_id: string | null;
  requested_by: string;
  passed: boolean;
  score: number;
  status_after: QaStatus;
  bytes_read: Int8;
  duration_ms: number;
  started_at: Timestamp;
  finished_at: Timestamp;
}

export interface CheckResultsTable {
  run_id: string;
  position: number;
  name: string;
  version: number;
  status: 'passed' | 'failed' | 'skipped';
  passed: boolean;
  score: number;
  details: string;
  metrics: Json<Record<string, unknown>>;
}

export interface ReviewsTable {
  id: string;
  episode_id: string;
  organization_id: string;
  decision: 'approve' | 'reject' | 'needs_inspection';
  note: string | null;
  reviewer: string;
  from_status: QaStatus;
  to_status: QaStatus;
  created_at: Timestamp;
}

export interface ProfilesTable {
  id: string;
  organization_id: string;
  name: string;
  robot_type: string | null;
  scene_id: string | null;
  rules: Json<Record<string, unknown>>;
  created_at: Generated<Date>;
  updated_at: Timestamp;
  deleted_at: NullableTimestamp;
}

export interface BulkRunsTable {
  id: string;
  organization_id: string;
  status: BulkRunStatus;
  filters: Json<Record<string, unknown>>;
  total_count: number;
  processed_count: Generated<number>;
  passed_count: Generated<number>;
  qa_failed_count: Generated<number>;
  processing_failed_count: Generated<number>;
  skipped_count: Generated<number>;
  failures_by_check: ColumnType<Record<string, number>, string | undefined, string>;
  version: Generated<number>;
  created_by: string;
  created_at: Generated<Date>;
  started_at: NullableTimestamp;
  updated_at: Timestamp;
  finished_at: NullableTimestamp;
  cancel_requested_at: NullableTimestamp;
  error_message: string | null;
  last_progress_at: NullableTimestamp;
  last_progress_version: Generated<number>;
  last_progress_event_id: string | null;
  last_progress_published_at: NullableTimestamp;
}

export interface BulkRunItemsTable {
  run_id: string;
  position: number;
  episode_id: string;
  status: ColumnType<
    'pending' | 'claimed' | 'done',
    'pending' | 'claimed' | 'done' | undefined,
    'pending' | 'claimed' | 'done'
  >;
  claimed_by: string | null;
  claim_token: string | null;
  claim_expires_at: NullableTimestamp;
  outcome: 'passed' | 'qa_failed' | 'processing_failed' | 'skipped' | null;
  /** Why it was counted `processing_failed`. */
  error: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface BulkRunWorkersTable {
  run_id: string;
  worker_id: string;
  heartbeat_at: Timestamp;
}

/** The `qa` schema as kysely sees it. */
export interface QaDB extends MessagingTables {
  devices: DevicesTable;
  episodes: EpisodesTable;
  runs: RunsTable;
  check_results: CheckResultsTable;
  reviews: ReviewsTable;
  profiles: ProfilesTable;
  bulk_runs: BulkRunsTable;
  bulk_run_items: BulkRunItemsTable;
  bulk_run_workers: BulkRunWorkersTable;
}
