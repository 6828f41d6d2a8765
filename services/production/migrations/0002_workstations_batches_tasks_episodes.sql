-- Workstations, batches, tasks and episodes (DESIGN §5, Keystone §1–2).
-- Lock order, everywhere: orders → batches → tasks → episodes (workstations before batches). Keeping to it
-- is what keeps concurrent commands from deadlocking.

-- A workstation is one binding of a device to a data collector. Re-pairing creates a new row and marks
-- the old one superseded, so tasks and episodes keep pointing at the binding they were made under.
create table workstations (
  id uuid primary key,
  organization_id uuid not null,
  name text not null check (length(name) between 1 and 200),
  device_id text not null check (length(device_id) between 1 and 200),
  collector_operator_id text not null check (length(collector_operator_id) between 1 and 200),
  collector_name text,
  status text not null default 'inactive' check (status in ('active', 'inactive', 'break', 'offline')),
  is_current boolean not null default true,
  superseded_by uuid references workstations (id),
  superseded_at timestamptz,
  metadata jsonb not null default '{}'::jsonb check (jsonb_typeof(metadata) = 'object'),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  -- set when the workstation is unbound (its last binding ended)
  deleted_at timestamptz,
  check (not (is_current and deleted_at is not null))
);
-- A device, and separately a collector, is in at most one current binding.
create unique index workstations_device_current_key
  on workstations (organization_id, device_id) where is_current and deleted_at is null;
create unique index workstations_collector_current_key
  on workstations (organization_id, collector_operator_id) where is_current and deleted_at is null;
create index workstations_org_list_idx on workstations (organization_id, id desc);

create table batches (
  id uuid primary key,
  organization_id uuid not null,
  order_id uuid not null references orders (id),
  workstation_id uuid not null references workstations (id),
  name text not null check (length(name) between 1 and 200),
  notes text,
  status text not null default 'pending' check (status in ('pending', 'active', 'completed', 'cancelled', 'recalled')),
  -- maintained in the transaction that creates each episode
  episode_count integer not null default 0 check (episode_count >= 0),
  metadata jsonb not null default '{}'::jsonb check (jsonb_typeof(metadata) = 'object'),
  started_at timestamptz,
  ended_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  deleted_at timestamptz
);
create index batches_order_idx on batches (order_id, status) where deleted_at is null;
create index batches_workstation_idx on batches (workstation_id, status) where deleted_at is null;
create index batches_org_list_idx on batches (organization_id, id desc) where deleted_at is null;

create table tasks (
  id uuid primary key,
  organization_id uuid not null,
  order_id uuid not null references orders (id),
  batch_id uuid not null references batches (id),
  workstation_id uuid not null references workstations (id),
  scene_id uuid not null references scenes (id),
  external_id text check (length(external_id) between 1 and 200),
  group_name text,
  status text not null default 'pending'
    check (status in ('pending', 'ready', 'in_progress', 'uploading', 'completed', 'failed', 'cancelled')),
  error_message text,
  metadata jsonb not null default '{}'::jsonb check (jsonb_typeof(metadata) = 'object'),
  ready_at timestamptz,
  started_at timestamptz,
  completed_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  deleted_at timestamptz
);
-- Idempotent creation by external_id, scoped to the order: concurrent creates meet here (ON CONFLICT).
create unique index tasks_order_external_id_live_key
  on tasks (order_id, external_id) where external_id is not null and deleted_at is null;
create index tasks_order_status_idx on tasks (order_id, status) where deleted_at is null;
create index tasks_batch_status_idx on tasks (batch_id, status) where deleted_at is null;
create index tasks_workstation_idx on tasks (workstation_id) where deleted_at is null;
create index tasks_org_list_idx on tasks (organization_id, id desc) where deleted_at is null;

create table episodes (
  id uuid primary key,
  organization_id uuid not null,
  task_id uuid not null references tasks (id),
  batch_id uuid not null references batches (id),
  order_id uuid not null references orders (id),
  scene_id uuid not null references scenes (id),
  workstation_id uuid not null references workstations (id),
  device_id text not null,
  upload_id uuid not null,
  mcap jsonb not null,
  sidecar jsonb,
  recording jsonb,
  qa_status text not null default 'pending_qa' check (qa_status in
    ('pending_qa', 'qa_running', 'approved', 'failed', 'needs_inspection', 'inspector_approved', 'rejected')),
  labels text[] not null default '{}',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  deleted_at timestamptz
);
-- Exactly one live episode per task (Keystone enforced this only in code).
create unique index episodes_task_live_key on episodes (task_id) where deleted_at is null;
-- One upload makes at most one episode.
create unique index episodes_upload_key on episodes (upload_id);
create index episodes_org_list_idx on episodes (organization_id, id desc) where deleted_at is null;
create index episodes_order_idx on episodes (order_id) where deleted_at is null;
create index episodes_batch_idx on episodes (batch_id) where deleted_at is null;
create index episodes_labels_idx on episodes using gin (labels) where deleted_at is null;
