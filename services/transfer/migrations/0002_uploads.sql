-- Uploads shaped like S3 multipart (DESIGN §6). Part state lives here, not in the object store.

create table uploads (
  id uuid primary key,
  organization_id uuid not null,
  device_ref uuid not null references devices (id),
  device_id text not null,
  task_id uuid not null,
  status text not null default 'open'
    check (status in ('open', 'verifying', 'verified', 'acknowledged', 'rejected', 'expired', 'failed')),
  part_size bigint not null check (part_size >= 1),
  recording jsonb,
  rejection_reason text,
  rejection_detail text,
  rejected_by text check (rejected_by in ('transfer', 'production')),
  episode_id uuid,
  failure_reason text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  last_activity_at timestamptz not null default now(),
  completed_at timestamptz,
  verified_at timestamptz,
  acknowledged_at timestamptz,
  -- Re-publications of upload.verified while production has not acknowledged it (bounded).
  republish_count integer not null default 0 check (republish_count >= 0),
  last_republished_at timestamptz,
  check ((status = 'rejected') = (rejection_reason is not null))
);
-- At most one upload in flight per task: opening again returns it (and two racing opens make one).
create unique index uploads_task_live_key on uploads (task_id) where status in ('open', 'verifying', 'verified');
create index uploads_org_list_idx on uploads (organization_id, id desc);
create index uploads_open_activity_idx on uploads (last_activity_at) where status = 'open';
create index uploads_verified_idx on uploads (verified_at) where status = 'verified';

create table upload_files (
  upload_id uuid not null references uploads (id),
  role text not null check (role in ('mcap', 'sidecar')),
  -- Fixed when the upload opened; never re-derived (Keystone #83).
  object_key text not null unique,
  size_bytes bigint not null check (size_bytes >= 1),
  sha256 text not null check (sha256 ~ '^[0-9a-f]{64}$'),
  multipart_id text not null,
  part_count integer not null check (part_count between 1 and 10000),
  primary key (upload_id, role)
);

create table upload_parts (
  upload_id uuid not null,
  role text not null,
  part_number integer not null check (part_number >= 1),
  size_bytes bigint not null check (size_bytes >= 0),
  -- Null when the bytes went straight to S3 (the device reported the ETag; the whole file is hashed later).
  sha256 text check (sha256 ~ '^[0-9a-f]{64}$'),
  etag text not null,
  received_at timestamptz not null default now(),
  primary key (upload_id, role, part_number),
  foreign key (upload_id, role) references upload_files (upload_id, role)
);
