import type { ColumnType, Generated } from 'kysely';

export interface IdempotencyKeysTable {
  scope_hash: string;
  organization_id: string;
  actor_sub: string;
  method: string;
  route: string;
  idempotency_key: string;
  fingerprint: string;
  command_id: string;
  state: 'in_progress' | 'completed';
  locked_until: ColumnType<Date | null, Date | null | unknown, Date | null | unknown>;
  response_status: number | null;
  response_headers: ColumnType<Record<string, string> | null, string | null, string | null>;
  response_body: string | null;
  created_at: ColumnType<Date, Date | unknown | undefined, Date | unknown>;
  expires_at: ColumnType<Date, Date | unknown, Date | unknown>;
}

/** The `gateway` schema. */
export interface GatewayDB {
  idempotency_keys: IdempotencyKeysTable;
  schema_migrations: { id: string; checksum: string; applied_at: Generated<Date> };
}
