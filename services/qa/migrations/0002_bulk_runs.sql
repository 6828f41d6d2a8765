-- Bulk QA runs (DESIGN §7): the episode set fixed at execute time, items claimed by any replica with a
-- lease, counters updated in one statement, worker heart-beats.

create table bulk_runs (
  id uuid primary key,
  organization_id uuid not null,
  status text not null check (status in ('queued', 'running', 'completed', 'failed', 'interrupted', 'cancelled')),
  filters jsonb not null,
  total_count integer not null check (total_count >= 0),
  processed_count integer not null default 0,
  passed_count integer not null default 0,
  qa_failed_count integer not null default 0,
  processing_failed_count integer not null default 0,
  skipped_count integer not null default 0,
  failures_by_check jsonb not null default '{}'::jsonb,
  version integer not null default 1,
  created_by text not null,
  created_at timestamptz not null default now(),
  started_at timestamptz,
  updated_at timestamptz not null default now(),
  finished_at timestamptz,
  cancel_requested_at timestamptz,
  error_message text,
  -- Progress events are throttled (≤ 2/s per run): when and at which version the last one went out.
  last_progress_at timestamptz,
  last_progress_version integer not null default 0,
  -- The invariant every reader relies on, refused by the database if code ever breaks it.
  check (processed_count = passed_count + qa_failed_count + processing_failed_count + skipped_count),
  check (processed_count <= total_count)
);
-- One active run per organization, whatever the number of replicas (DESIGN §7).
create unique index bulk_runs_one_active_key on bulk_runs (organization_id) where status in ('queued', 'running');
create index bulk_runs_org_list_idx on bulk_runs (organization_id, id desc);

create table bulk_run_items (
  run_id uuid not null references bulk_runs (id),
  position integer not null,
  episode_id uuid not null,
  status text not null default 'pending' check (status in ('pending', 'claimed', 'done')),
  claimed_by text,
  claim_expires_at timestamptz,
  outcome text check (outcome in ('passed', 'qa_failed', 'processing_failed', 'skipped')),
  primary key (run_id, position),
  unique (run_id, episode_id)
);
create index bulk_run_items_todo_idx on bulk_run_items (run_id, position) where status <> 'done';

create table bulk_run_workers (
  run_id uuid not null references bulk_runs (id),
  worker_id text not null,
  heartbeat_at timestamptz not null default now(),
  primary key (run_id, worker_id)
);
