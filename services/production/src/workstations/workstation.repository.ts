import type { Workstation, WorkstationListFilter, WorkstationStatus } from '@ferry/contracts';
import { isUniqueViolation } from '@ferry/platform';
import { Injectable } from '@nestjs/common';
import type { Kysely, Selectable, Updateable } from 'kysely';
import type { ProductionDB, WorkstationsTable } from '../database.js';

type Db = Kysely<ProductionDB>;
export type WorkstationRow = Selectable<WorkstationsTable>;

/** A current binding already holds the device or the collector. */
export class BindingTaken extends Error {
  constructor(readonly field: 'device_id' | 'collector_operator_id') {
    super(field);
  }
}

function rethrowBinding(err: unknown): never {
  if (isUniqueViolation(err, 'workstations_device_current_key')) throw new BindingTaken('device_id');
  if (isUniqueViolation(err, 'workstations_collector_current_key')) throw new BindingTaken('collector_operator_id');
  throw err;
}

export function toWorkstation(row: WorkstationRow): Workstation {
  return {
    id: row.id,
    organization_id: row.organization_id,
    name: row.name,
    device_id: row.device_id,
    collector_operator_id: row.collector_operator_id,
    collector_name: row.collector_name,
    status: row.status as WorkstationStatus,
    is_current: row.is_current,
    superseded_by: row.superseded_by,
    metadata: row.metadata,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
}

export interface NewWorkstation {
  id: string;
  organization_id: string;
  name: string;
  device_id: string;
  collector_operator_id: string;
  collector_name: string | null;
  status: WorkstationStatus;
  metadata: Record<string, unknown>;
}

@Injectable()
export class WorkstationRepository {
  async insert(db: Db, ws: NewWorkstation): Promise<WorkstationRow> {
    try {
      return await db
        .insertInto('workstations')
        .values({ ...ws, metadata: JSON.stringify(ws.metadata) })
        .returningAll()
        .executeTakeFirstOrThrow();
    } catch (err) {
      rethrowBinding(err);
    }
  }

  /** A binding of the organization, current or historical (but not unbound) unless `currentOnly`. */
  async find(
    db: Db,
    org: string,
    id: string,
    options: { lock?: 'update' | 'share'; currentOnly?: boolean } = {},
  ): Promise<WorkstationRow | undefined> {
    let q = db
      .selectFrom('workstations')
      .selectAll()
      .where('id', '=', id)
      .where('organization_id', '=', org)
      .where('deleted_at', 'is', null);
    if (options.currentOnly) q = q.where('is_current', '=', true);
    if (options.lock === 'update') q = q.forUpdate();
    if (options.lock === 'share') q = q.forShare();
    return q.executeTakeFirst();
  }

  /** The current binding of a device in the organization, if it is bound. */
  async findCurrentByDevice(db: Db, org: string, deviceId: string): Promise<WorkstationRow | undefined> {
    return db
      .selectFrom('workstations')
      .selectAll()
      .where('organization_id', '=', org)
      .where('device_id', '=', deviceId)
      .where('is_current', '=', true)
      .where('deleted_at', 'is', null)
      .executeTakeFirst();
  }

  async findById(db: Db, id: string): Promise<WorkstationRow | undefined> {
    return db.selectFrom('workstations').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async list(db: Db, org: string, query: WorkstationListFilter, after?: string): Promise<WorkstationRow[]> {
    let q = db.selectFrom('workstations').selectAll().where('organization_id', '=', org);
    if (!query.include_history) q = q.where('is_current', '=', true).where('deleted_at', 'is', null);
    if (query.device_id) q = q.where('device_id', '=', query.device_id);
    if (query.collector_operator_id) q = q.where('collector_operator_id', '=', query.collector_operator_id);
    if (after) q = q.where('id', '<', after);
    return q
      .orderBy('id', 'desc')
      .limit(query.limit + 1)
      .execute();
  }

  async update(db: Db, id: string, patch: Updateable<WorkstationsTable>): Promise<WorkstationRow> {
    try {
      return await db
        .updateTable('workstations')
        .set({ ...patch, updated_at: new Date() })
        .where('id', '=', id)
        .returningAll()
        .executeTakeFirstOrThrow();
    } catch (err) {
      rethrowBinding(err);
    }
  }

  /**
   * Takes a binding out of the current set before its successor is inserted (the partial unique
   * indexes would otherwise refuse the successor); `setSuperseded` then links the two.
   */
  async supersede(db: Db, id: string): Promise<void> {
    await db
      .updateTable('workstations')
      .set({ is_current: false, superseded_at: new Date(), updated_at: new Date() })
      .where('id', '=', id)
      .execute();
  }

  async setSuperseded(db: Db, id: string, by: string): Promise<void> {
    await db.updateTable('workstations').set({ superseded_by: by }).where('id', '=', id).execute();
  }

  /** Ends the binding for good: the device and collector are free again. */
  async unbind(db: Db, id: string): Promise<WorkstationRow> {
    return db
      .updateTable('workstations')
      .set({ is_current: false, deleted_at: new Date(), updated_at: new Date() })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirstOrThrow();
  }

  /** Batches that keep a workstation bound (pending or active). */
  async openBatches(db: Db, workstationId: string): Promise<{ id: string; name: string; status: string }[]> {
    return db
      .selectFrom('batches')
      .select(['id', 'name', 'status'])
      .where('workstation_id', '=', workstationId)
      .where('status', 'in', ['pending', 'active'])
      .where('deleted_at', 'is', null)
      .orderBy('id')
      .limit(10)
      .execute();
  }

  /** Recomputes the activity status from batches; never overwrites `break` or `offline` (Keystone). */
  async syncStatus(db: Db, workstationId: string): Promise<void> {
    await db
      .updateTable('workstations')
      .set((eb) => ({
        status: eb
          .case()
          .when(
            eb.exists(
              eb
                .selectFrom('batches')
                .select('id')
                .where('workstation_id', '=', workstationId)
                .where('status', '=', 'active')
                .where('deleted_at', 'is', null),
            ),
          )
          .then('active')
          .else('inactive')
          .end(),
        updated_at: new Date(),
      }))
      .where('id', '=', workstationId)
      .where('status', 'in', ['active', 'inactive'])
      .execute();
  }
}
