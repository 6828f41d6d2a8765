import { type EventDefinition, type EventPayload, HEADERS } from '@ferry/contracts';
import { type Kysely, sql, type Transaction } from 'kysely';
import { v7 as uuidv7 } from 'uuid';
import type { MessagingTables } from '../db/messaging-tables.js';
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

  private headersFor(def: EventDefinition, id: string, occurredAt: string): Record<string, string> {
    const trace = currentTrace();
    const headers: Record<string, string> = {
      [HEADERS.eventId]: id,
      [HEADERS.eventType]: def.type,
      [HEADERS.schemaVersion]: String(def.version),
      [HEADERS.occurredAt]: occurredAt,
    };
    if (trace.requestId) headers[HEADERS.correlationId] = trace.requestId;
    if (trace.causationId) headers[HEADERS.causationId] = trace.causationId;
    return headers;
  }

  /** Many events of one type in one statement (bulk task creation, order finalization). */
  async appendMany<E extends EventDefinition>(
    trx: Transaction<any>,
    def: E,
    items: readonly { payload: EventPayload<E>; aggregateId: string }[],
  ): Promise<string[]> {
    if (items.length === 0) return [];
    const occurredAt = new Date().toISOString();
    const rows = items.map((item) => {
      const id = uuidv7();
      return {
        id,
        subject: this.subjectFor(def, item.aggregateId),
        payload: JSON.stringify(def.schema.parse(item.payload)),
        headers: JSON.stringify(this.headersFor(def, id, occurredAt)),
      };
    });
    await sql`
      insert into outbox (id, subject, event_type, payload, headers)
      select id, subject, ${def.type}, payload, headers
      from unnest(${rows.map((r) => r.id)}::uuid[], ${rows.map((r) => r.subject)}::text[],
                  ${rows.map((r) => r.payload)}::jsonb[], ${rows.map((r) => r.headers)}::jsonb[])
        as t(id, subject, payload, headers)`.execute(trx);
    return rows.map((r) => r.id);
  }

  async append<E extends EventDefinition>(
    trx: Transaction<any>,
    def: E,
    payload: EventPayload<E>,
    options: AppendOptions,
  ): Promise<string> {
    const parsed = def.schema.parse(payload);
    const id = options.eventId ?? uuidv7();
    const headers = this.headersFor(def, id, new Date().toISOString());
    await (trx as unknown as Kysely<MessagingTables>)
      .insertInto('outbox')
      .values({
        id,
        subject: this.subjectFor(def, options.aggregateId),
        event_type: def.type,
        payload: JSON.stringify(parsed),
        headers: JSON.stringify(headers),
      })
      .execute();
    return id;
  }
}
