-- QA's own projection of episodes and devices (fed by production's and transfer's events), the
-- append-only history of runs, check results and reviews, and the profiles (DESIGN §7).

create table devices (
  organization_id uuid not null,
  device_id text not null,
  robot_type text,
  expected_topics text[] not null default '{}',
  deleted boolean not null default false,
  updated_at timestamptz not null default now(),
  primary key (organization_id, device_id)
);

create table episodes (
  id uuid primary key,
  organization_id uuid not null,
  task_id uuid not null,
  order_id uuid not null,
  scene_id uuid not null,
  batch_id uuid not null,
  device_id text not null,
  robot_type text,
  upload_id uuid not null,
  mcap jsonb not null,
  sidecar jsonb,
  recording jsonb,
  labels text[] not null default '{}',
  episode_created_at timestamptz not null,
  qa_status text not null default 'pending_qa' check (qa_status in
    ('pending_qa', 'qa_running', 'approved', 'failed', 'needs_inspection', 'inspector_approved', 'rejected')),
  status_changed_at timestamptz not null default now(),
  qa_score real,
  failed_checks text[] not null default '{}',
  last_run_id uuid,
  -- The claim: one check at a time per episode, with a lease that a dead checker lets expire.
  claim_id uuid,
  claimed_by text,
  claim_expires_at timestamptz,
  -- The status to go back to when a claim is released without a result (storage error, dead checker).
  status_before_claim text,
  created_at timestamptz not null default now(),
  check ((claim_id is null) = (claim_expires_at is null))
);
create index episodes_org_list_idx on episodes (organization_id, id desc);
create index episodes_org_status_idx on episodes (organization_id, qa_status);
create index episodes_claims_idx on episodes (claim_expires_at) where claim_id is not null;

create table runs (
  id uuid primary key,
  episode_id uuid not null references episodes (id),
  organization_id uuid not null,
  suite_version text not null,
  trigger text not null check (trigger in ('auto', 'manual', 'bulk')),
  bulk_run_id uuid,
  requested_by text not null,
  passed boolean not null,
  score real not null,
  status_after text not null,
  bytes_read bigint not null,
  duration_ms integer not null,
  started_at timestamptz not null,
  finished_at timestamptz not null default now()
);
create index runs_episode_idx on runs (episode_id, finished_at desc);

-- One row per check per run, never overwritten.
create table check_results (
  run_id uuid not null references runs (id),
  position integer not null,
  name text not null,
  version integer not null,
  status text not null check (status in ('passed', 'failed', 'skipped')),
  passed boolean not null,
  score real not null,
  details text not null,
  metrics jsonb not null default '{}'::jsonb,
  primary key (run_id, position)
);

create table reviews (
  id uuid primary key,
  episode_id uuid not null references episodes (id),
  organization_id uuid not null,
  decision text not null check (decision in ('approve', 'reject', 'needs_inspection')),
  note text,
  reviewer text not null,
  from_status text not null,
  to_status text not null,
  created_at timestamptz not null default now()
);
create index reviews_episode_idx on reviews (episode_id, created_at desc);

create table profiles (
  id uuid primary key,
  organization_id uuid not null,
  name text not null,
  robot_type text,
  scene_id uuid,
  rules jsonb not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  deleted_at timestamptz,
  check (robot_type is not null or scene_id is not null)
);
-- One live profile per (robot type, scene) pair of an organization; null means "any".
create unique index profiles_scope_live_key on profiles (organization_id, coalesce(robot_type, ''), coalesce(scene_id::text, ''))
  where deleted_at is null;
