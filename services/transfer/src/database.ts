import type { UploadFileRole, UploadStatus } from '@ferry/contracts';
import type { MessagingTables } from '@ferry/platform';
import type { ColumnType, Generated } from 'kysely';

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;
type NullableTimestamp = ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
type Json<T> = ColumnType<T, string, string>;
/** int8 comes back from node-postgres as a string; repositories turn it into a number (sizes < 2^53). */
type Int8 = ColumnType<string, number, number>;

export interface DevicesTable {
  id: string;
  organization_id: string;
  device_id: string;
  serial: string | null;
  name: string;
  robot_type: string | null;
  expected_topics: ColumnType<string[], string[] | undefined, string[]>;
  metadata: Json<Record<string, unknown>>;
  created_at: Generated<Date>;
  updated_at: Timestamp;
  deleted_at: NullableTimestamp;
}

export interface PairingTokensTable {
  token_hash: Buffer;
  id: string;
  organization_id: string;
  device_ref: string;
  created_by: string;
  created_at: Generated<Date>;
  expires_at: Timestamp;
  redeemed_at: NullableTimestamp;
}

export interface DeviceTokensTable {
  id: string;
  token_hash: Buffer;
  organization_id: string;
  device_ref: string;
  pairing_token_id: string | null;
  label: string | null;
  created_at: Generated<Date>;
  last_used_at: NullableTimestamp;
  revoked_at: NullableTimestamp;
}

export interface UploadsTable {
  id: string;
  organization_id: string;
  device_ref: string;
  device_id: string;
  task_id: string;
  status: ColumnType<UploadStatus, UploadStatus | undefined, UploadStatus>;
  part_size: Int8;
  recording: ColumnType<Record<string, unknown> | null, string | null | undefined, string | null>;
  rejection_reason: string | null;
  rejection_detail: string | null;
  rejected_by: 'transfer' | 'production' | null;
  episode_id: string | null;
  failure_reason: string | null;
  created_at: Generated<Date>;
  updated_at: Timestamp;
  last_activity_at: Timestamp;
  completed_at: NullableTimestamp;
  verified_at: NullableTimestamp;
  acknowledged_at: NullableTimestamp;
  republish_count: Generated<number>;
  last_republished_at: NullableTimestamp;
}

export interface UploadFilesTable {
  upload_id: string;
  role: UploadFileRole;
  object_key: string;
  size_bytes: Int8;
  sha256: string;
  multipart_id: string;
  part_count: number;
}

export interface UploadPartsTable {
  upload_id: string;
  role: UploadFileRole;
  part_number: number;
  size_bytes: Int8;
  sha256: string | null;
  etag: string;
  received_at: Timestamp;
}

/** The `transfer` schema as kysely sees it. */
export interface TransferDB extends MessagingTables {
  devices: DevicesTable;
  pairing_tokens: PairingTokensTable;
  device_tokens: DeviceTokensTable;
  uploads: UploadsTable;
  upload_files: UploadFilesTable;
  upload_parts: UploadPartsTable;
}
