import type { ColumnType, Generated } from 'kysely';

/** Kysely view of the tables of migrations/0001_messaging.sql, present in every service schema. */
export interface OutboxTable {
  id: string;
  subject: string;
  event_type: string;
  payload: ColumnType<unknown, string, string>;
  correlation_id: string | null;
  causation_id: string | null;
  created_at: Generated<Date>;
  next_attempt_at: Generated<Date>;
  attempts: Generated<number>;
  last_error: string | null;
  published_at: Date | null;
  stream_seq: ColumnType<string | null, number | null, number | null>;
}

export interface InboxTable {
  consumer: string;
  message_id: string;
  subject: string;
  stream_seq: ColumnType<string | null, number | null, number | null>;
  received_at: Generated<Date>;
}

export interface CommandLogTable {
  command_id: string;
  subject: string;
  reply: ColumnType<unknown, string, string>;
  created_at: Generated<Date>;
}

export interface MessagingTables {
  outbox: OutboxTable;
  inbox: InboxTable;
  command_log: CommandLogTable;
}
