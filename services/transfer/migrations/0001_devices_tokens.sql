-- Devices, pairing tokens and device tokens (DESIGN §6). Tokens are stored only as their sha256: the
-- hash is the lookup key, the secret is shown once and never kept.

create table devices (
  id uuid primary key,
  organization_id uuid not null,
  device_id text not null check (length(device_id) between 1 and 200),
  serial text check (length(serial) <= 200),
  name text not null check (length(name) between 1 and 200),
  robot_type text check (length(robot_type) <= 100),
  expected_topics text[] not null default '{}',
  metadata jsonb not null default '{}'::jsonb check (jsonb_typeof(metadata) = 'object'),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  deleted_at timestamptz
);
-- One live device per device_id in an organization; a deleted one can be registered again.
create unique index devices_org_device_live_key on devices (organization_id, device_id) where deleted_at is null;
create index devices_org_list_idx on devices (organization_id, id desc) where deleted_at is null;

create table pairing_tokens (
  token_hash bytea primary key check (length(token_hash) = 32),
  id uuid not null unique,
  organization_id uuid not null,
  device_ref uuid not null references devices (id),
  created_by text not null,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null,
  -- Set once, by a compare-and-set: a pairing token yields at most one device token.
  redeemed_at timestamptz
);
create index pairing_tokens_device_idx on pairing_tokens (device_ref);

create table device_tokens (
  id uuid primary key,
  token_hash bytea not null unique check (length(token_hash) = 32),
  organization_id uuid not null,
  device_ref uuid not null references devices (id),
  -- The pairing token it was issued for: unique, so a second redemption cannot make a second token.
  pairing_token_id uuid unique references pairing_tokens (id),
  label text check (length(label) <= 200),
  created_at timestamptz not null default now(),
  last_used_at timestamptz,
  revoked_at timestamptz
);
create index device_tokens_device_idx on device_tokens (device_ref);
