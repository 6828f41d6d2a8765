-- Messaging tables every service schema carries (DESIGN §3). Applied before the service's own migrations.

-- Transactional outbox: a state change and the events it causes commit together; the relay publishes
-- each row to JetStream with Nats-Msg-Id = id and only then sets published_at.
create table outbox (
  id uuid primary key,
  subject text not null,
  event_type text not null,
  payload jsonb not null,
  headers jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  next_attempt_at timestamptz not null default now(),
  attempts integer not null default 0 check (attempts >= 0),
  last_error text,
  published_at timestamptz,
  stream_seq bigint
);

-- The relay's claim query reads only unpublished rows in this order.
create index outbox_unpublished_idx on outbox (next_attempt_at, created_at) where published_at is null;
create index outbox_published_at_idx on outbox (published_at) where published_at is not null;

-- Wake relays at commit (NOTIFY is delivered only when the inserting transaction commits).
create function outbox_notify() returns trigger language plpgsql as $$
begin
  perform pg_notify(tg_table_schema || '.outbox', '');
  return null;
end
$$;
create trigger outbox_notify after insert on outbox for each statement execute function outbox_notify();

-- Inbox: one row per (consumer, event) handled, written in the transaction of the effect. The primary
-- key turns a redelivery into a conflict (duplicate: ack and skip) and serialises two concurrent
-- deliveries of the same event: the second waits on the index until the first commits.
create table inbox (
  consumer text not null,
  message_id text not null,
  subject text not null,
  stream_seq bigint,
  received_at timestamptz not null default now(),
  primary key (consumer, message_id)
);
create index inbox_received_at_idx on inbox (received_at);

-- Command log: RPC commands sent under an Idempotency-Key carry a command id; the first execution
-- stores its reply in the same transaction as its effect, and a replay returns that reply.
create table command_log (
  command_id uuid primary key,
  subject text not null,
  reply jsonb not null,
  created_at timestamptz not null default now()
);
create index command_log_created_at_idx on command_log (created_at);
