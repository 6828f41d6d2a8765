-- Scenes and orders (DESIGN §5). Every row carries its organization; deletes are soft, and names are
-- unique among live rows only (a partial unique index), so a deleted name can be reused.

create table scenes (
  id uuid primary key,
  organization_id uuid not null,
  name text not null check (length(name) between 1 and 200),
  description text check (length(description) <= 2000),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  deleted_at timestamptz
);
create unique index scenes_org_name_live_key on scenes (organization_id, name) where deleted_at is null;
create index scenes_org_list_idx on scenes (organization_id, id desc) where deleted_at is null;

create table orders (
  id uuid primary key,
  organization_id uuid not null,
  -- A soft-deleted scene keeps its row, so the key stays valid; deleting a scene that live orders
  -- still use is refused by the service (409 naming them).
  scene_id uuid not null references scenes (id),
  name text not null check (length(name) between 1 and 200),
  target_count integer not null check (target_count between 1 and 1000000),
  priority text not null default 'normal' check (priority in ('low', 'normal', 'high', 'urgent')),
  status text not null default 'created'
    check (status in ('created', 'in_progress', 'paused', 'completed', 'cancelled')),
  deadline timestamptz,
  metadata jsonb not null default '{}'::jsonb check (jsonb_typeof(metadata) = 'object'),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  deleted_at timestamptz
);
create unique index orders_org_name_live_key on orders (organization_id, name) where deleted_at is null;
create index orders_org_list_idx on orders (organization_id, id desc) where deleted_at is null;
create index orders_scene_live_idx on orders (scene_id) where deleted_at is null;
