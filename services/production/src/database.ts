import type { MessagingTables } from '@ferry/platform';
import type { ColumnType, Generated } from 'kysely';

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;

export interface ScenesTable {
  id: string;
  organization_id: string;
  name: string;
  description: string | null;
  created_at: Generated<Date>;
  updated_at: Timestamp;
  deleted_at: Date | null;
}

export interface OrdersTable {
  id: string;
  organization_id: string;
  scene_id: string;
  name: string;
  target_count: number;
  priority: string;
  status: string;
  deadline: ColumnType<Date | null, Date | string | null, Date | string | null>;
  metadata: ColumnType<Record<string, unknown>, string, string>;
  created_at: Generated<Date>;
  updated_at: Timestamp;
  deleted_at: Date | null;
}

/** The `production` schema as kysely sees it. */
export interface ProductionDB extends MessagingTables {
  scenes: ScenesTable;
  orders: OrdersTable;
  workstations: WorkstationsTable;
  batches: BatchesTable;
  tasks: TasksTable;
  episodes: EpisodesTable;
}

type Json<T> = ColumnType<T, string, string>;

export interface WorkstationsTable {
  id: string;
  organization_id: string;
  name: string;
  device_id: string;
  collector_operator_id: string;
  collector_name: string | null;
  status: string;
  is_current: Generated<boolean>;
  superseded_by: string | null;
  superseded_at: Date | null;
  metadata: Json<Record<string, unknown>>;
  created_at: Generated<Date>;
  updated_at: Timestamp;
  deleted_at: Date | null;
}

export interface BatchesTable {
  id: string;
  organization_id: string;
  order_id: string;
  workstation_id: string;
  name: string;
  notes: string | null;
  status: Generated<string>;
  episode_count: Generated<number>;
  metadata: Json<Record<string, unknown>>;
  started_at: Date | null;
  ended_at: Date | null;
  created_at: Generated<Date>;
  updated_at: Timestamp;
  deleted_at: Date | null;
}

export interface TasksTable {
  id: string;
  organization_id: string;
  order_id: string;
  batch_id: string;
  workstation_id: string;
  scene_id: string;
  external_id: string | null;
  group_name: string | null;
  status: Generated<string>;
  error_message: string | null;
  metadata: Json<Record<string, unknown>>;
  ready_at: Date | null;
  started_at: Date | null;
  completed_at: Date | null;
  created_at: Generated<Date>;
  updated_at: Timestamp;
  deleted_at: Date | null;
}

export interface EpisodesTable {
  id: string;
  organization_id: string;
  task_id: string;
  batch_id: string;
  order_id: string;
  scene_id: string;
  workstation_id: string;
  device_id: string;
  upload_id: string;
  mcap: Json<{ object_key: string; size_bytes: number; sha256: string }>;
  sidecar: ColumnType<{ object_key: string; size_bytes: number; sha256: string } | null, string | null, string | null>;
  recording: ColumnType<Record<string, unknown> | null, string | null, string | null>;
  qa_status: Generated<string>;
  qa_status_changed_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
  labels: ColumnType<string[], string[] | undefined, string[]>;
  created_at: Generated<Date>;
  updated_at: Timestamp;
  deleted_at: Date | null;
}
