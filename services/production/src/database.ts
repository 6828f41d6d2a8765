import type { MessagingTables } from '@ferry/platform';
import type { ColumnType, Generated } from 'kysely';

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;

export interface ScenesTable {
  id: string;
  organization_id: string;
  name: string;
  description: string | null;
  created_at: Generated<Date>;
  updated_at: Timestamp;
  deleted_at: Date | null;
}

export interface OrdersTable {
  id: string;
  organization_id: string;
  scene_id: string;
  name: string;
  target_count: number;
  priority: string;
  status: string;
  deadline: ColumnType<Date | null, Date | string | null, Date | string | null>;
  metadata: ColumnType<Record<string, unknown>, string, string>;
  created_at: Generated<Date>;
  updated_at: Timestamp;
  deleted_at: Date | null;
}

/** The `production` schema as kysely sees it. */
export interface ProductionDB extends MessagingTables {
  scenes: ScenesTable;
  orders: OrdersTable;
}
