-- Idempotency keys (DESIGN §4, IETF draft-ietf-httpapi-idempotency-key-header). One row per
-- (organization, caller, method, route, key), claimed atomically by insert; kept 24 hours.
create table idempotency_keys (
  scope_hash text primary key,
  organization_id uuid not null,
  actor_sub text not null,
  method text not null,
  route text not null,
  idempotency_key text not null,
  -- sha256 of the validated request (path parameters, query, body): a different request under the
  -- same key is refused with 422.
  fingerprint text not null,
  -- Sent downstream as the command id, so a retry after a lost reply is never applied twice.
  command_id uuid not null,
  state text not null check (state in ('in_progress', 'completed')),
  -- While in progress, other requests with the key get 409 until this passes; after it (a crashed
  -- gateway, or a 5xx) the next request takes over with the same command id.
  locked_until timestamptz,
  response_status integer,
  response_headers jsonb,
  response_body text,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null
);
create index idempotency_keys_expires_idx on idempotency_keys (expires_at);
