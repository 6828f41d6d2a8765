import {
  type Actor,
  type CreateWorkstationBody,
  type Page,
  type UpdateWorkstationBody,
  type Workstation,
  type WorkstationListFilter,
  workstationEvents,
} from '@ferry/contracts';
import { DomainError, decodeCursor, isIdCursor, newId, notFound, Outbox, toPage } from '@ferry/platform';
import { Injectable } from '@nestjs/common';
import { Kysely, type Transaction } from 'kysely';

import type { ProductionDB } from '../database.js';
import { BindingTaken, toWorkstation, WorkstationRepository, type WorkstationRow } from './workstation.repository.js';

function bindingTaken(err: unknown, body: { device_id?: string; collector_operator_id?: string }): never {
  if (!(err instanceof BindingTaken)) throw err;
  const value = err.field === 'device_id' ? body.device_id : body.collector_operator_id;
  throw new DomainError(
    'binding_taken',
    `${err.field === 'device_id' ? 'device' : 'collector'} ${value} is already in another current workstation`,
    { field: err.field, value },
  );
}

/** Workstations: device ↔ data collector bindings, versioned so history stays attached to old work. */
@Injectable()
export class WorkstationService {
  constructor(
    private readonly db: Kysely<ProductionDB>,
    private readonly workstations: WorkstationRepository,
    private readonly outbox: Outbox,
  ) {}

  async create(actor: Actor, body: CreateWorkstationBody, trx: Transaction<ProductionDB>): Promise<Workstation> {
    const row = await this.workstations
      .insert(trx, {
        id: newId(),
        organization_id: actor.org,
        name: body.name ?? `ws-${body.device_id}`,
        device_id: body.device_id,
        collector_operator_id: body.collector_operator_id,
        collector_name: body.collector_name ?? null,
        status: 'inactive',
        metadata: body.metadata,
      })
      .catch((err) => bindingTaken(err, body));
    const workstation = toWorkstation(row);
    await this.outbox.append(trx, workstationEvents.bound, { workstation, supersedes: null }, { aggregateId: row.id });
    return workstation;
  }

  async get(actor: Actor, id: string): Promise<Workstation> {
    const row = await this.workstations.find(this.db, actor.org, id);
    if (!row) throw notFound('Workstation', id);
    return toWorkstation(row);
  }

  async list(actor: Actor, query: WorkstationListFilter): Promise<Page<Workstation>> {
    const after = query.cursor ? decodeCursor(query.cursor, isIdCursor).id : undefined;
    const rows = await this.workstations.list(this.db, actor.org, query, after);
    return toPage(rows, query.limit, toWorkstation, (r) => ({ id: r.id }));
  }

  private async current(trx: Transaction<ProductionDB>, actor: Actor, id: string): Promise<WorkstationRow> {
    const row = await this.workstations.find(trx, actor.org, id, { lock: 'update' });
    if (!row) throw notFound('Workstation', id);
    if (!row.is_current) {
      throw new DomainError('invalid_state', `workstation ${id} is a superseded binding; use ${row.superseded_by}`, {
        superseded_by: row.superseded_by,
      });
    }
    return row;
  }

  private async refuseWithOpenBatches(trx: Transaction<ProductionDB>, row: WorkstationRow, what: string) {
    const open = await this.workstations.openBatches(trx, row.id);
    if (open.length > 0) {
      throw new DomainError(
        'invalid_state',
        `cannot ${what} workstation ${row.id} while it has pending or active batches`,
        {
          open_batches: open,
        },
      );
    }
  }

  /**
   * Name, status and metadata change in place. A new device or collector re-pairs: the current row is
   * retired and a new binding version (new id) takes its place, so earlier tasks and episodes keep the
   * binding they were recorded under. Re-pairing is refused while batches are open on the old binding.
   */
  async update(
    actor: Actor,
    id: string,
    patch: UpdateWorkstationBody,
    trx: Transaction<ProductionDB>,
  ): Promise<Workstation> {
    const row = await this.current(trx, actor, id);
    const repair =
      (patch.device_id !== undefined && patch.device_id !== row.device_id) ||
      (patch.collector_operator_id !== undefined && patch.collector_operator_id !== row.collector_operator_id);
    if (!repair) {
      const changed = (['name', 'collector_name', 'status', 'metadata'] as const).filter(
        (k) => patch[k] !== undefined && JSON.stringify(patch[k]) !== JSON.stringify(row[k]),
      );
      if (changed.length === 0) return toWorkstation(row);
      const updated = await this.workstations.update(trx, id, {
        ...(patch.name !== undefined ? { name: patch.name } : {}),
        ...(patch.collector_name !== undefined ? { collector_name: patch.collector_name } : {}),
        ...(patch.status !== undefined ? { status: patch.status } : {}),
        ...(patch.metadata !== undefined ? { metadata: JSON.stringify(patch.metadata) } : {}),
      });
      const workstation = toWorkstation(updated);
      await this.outbox.append(trx, workstationEvents.updated, { workstation, changed }, { aggregateId: id });
      return workstation;
    }
    await this.refuseWithOpenBatches(trx, row, 're-pair');
    await this.workstations.supersede(trx, row.id);
    const next = await this.workstations
      .insert(trx, {
        id: newId(),
        organization_id: actor.org,
        name: patch.name ?? row.name,
        device_id: patch.device_id ?? row.device_id,
        collector_operator_id: patch.collector_operator_id ?? row.collector_operator_id,
        collector_name: patch.collector_name !== undefined ? patch.collector_name : row.collector_name,
        status: patch.status ?? (row.status as Workstation['status']),
        metadata: patch.metadata ?? row.metadata,
      })
      .catch((err) => bindingTaken(err, patch));
    await this.workstations.setSuperseded(trx, row.id, next.id);
    const workstation = toWorkstation(next);
    await this.outbox.append(
      trx,
      workstationEvents.bound,
      { workstation, supersedes: row.id },
      { aggregateId: next.id },
    );
    return workstation;
  }

  /** Ends the binding; refused while it has pending or active batches. */
  async unbind(actor: Actor, id: string, trx: Transaction<ProductionDB>): Promise<Workstation> {
    const row = await this.current(trx, actor, id);
    await this.refuseWithOpenBatches(trx, row, 'unbind');
    const workstation = toWorkstation(await this.workstations.unbind(trx, id));
    await this.outbox.append(trx, workstationEvents.unbound, { workstation }, { aggregateId: id });
    return workstation;
  }
}
