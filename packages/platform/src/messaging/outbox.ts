import type { EventDefinition, EventPayload } from '@ferry/contracts';
import { type Kysely, sql, type Transaction } from 'kysely';
import type { MessagingTables } from '../db/messaging-tables.js';
import { newId } from '../ids/ids.js';
import { currentTrace } from '../logging/context.js';
import type { Namespace } from '../namespace/namespace.js';

export interface AppendOptions {
  /** The aggregate the event is about; appended to the subject for per-aggregate events. */
  aggregateId: string;
  /** Defaults to a fresh UUIDv7. Pass a derived id when the same fact must never be recorded twice. */
  eventId?: string;
}

/**
 * Writes events into the outbox of the caller's transaction: the only way an event leaves a service.
 * The payload is validated against the contract here, so an invalid event fails the transaction
 * instead of reaching subscribers.
 */
export class Outbox {
  constructor(private readonly ns: Namespace) {}

  subjectFor(def: EventDefinition, aggregateId: string): string {
    return this.ns.subject(def.perAggregateSubject ? `${def.type}.${aggregateId}` : def.type);
  }

  /** Many events of one type in one statement (bulk task creation, order finalization). */
  async appendMany<E extends EventDefinition>(
    trx: Transaction<any>,
    def: E,
    items: readonly { payload: EventPayload<E>; aggregateId: string }[],
  ): Promise<string[]> {
    if (items.length === 0) return [];
    const trace = currentTrace();
    const rows = items.map((item) => ({
      id: newId(),
      subject: this.subjectFor(def, item.aggregateId),
      payload: def.schema.parse(item.payload),
    }));
    // One JSON document rather than four escaped array parameters: Postgres parses it once, and the
    // driver does not escape megabytes of payload element by element.
    await sql`
      insert into outbox (id, subject, event_type, payload, correlation_id, causation_id)
      select id, subject, ${def.type}, payload, ${trace.requestId ?? null}, ${trace.causationId ?? null}
      from jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) as t(id uuid, subject text, payload jsonb)`.execute(trx);
    return rows.map((r) => r.id);
  }

  async append<E extends EventDefinition>(
    trx: Transaction<any>,
    def: E,
    payload: EventPayload<E>,
    options: AppendOptions,
  ): Promise<string> {
    const parsed = def.schema.parse(payload);
    const id = options.eventId ?? newId();
    const trace = currentTrace();
    await (trx as unknown as Kysely<MessagingTables>)
      .insertInto('outbox')
      .values({
        id,
        subject: this.subjectFor(def, options.aggregateId),
        event_type: def.type,
        payload: JSON.stringify(parsed),
        correlation_id: trace.requestId ?? null,
        causation_id: trace.causationId ?? null,
      })
      .execute();
    return id;
  }
}
