import { HEADERS } from '@ferry/contracts';
import { type MsgHdrs, headers as natsHeaders } from '@nats-io/transport-node';

export interface EventMeta {
  eventId?: string;
  type?: string;
  version?: number;
  occurredAt?: string;
  correlationId?: string;
  causationId?: string;
}

export function toNatsHeaders(record: Record<string, string | undefined>): MsgHdrs {
  const h = natsHeaders();
  for (const [k, v] of Object.entries(record)) if (v !== undefined && v !== '') h.set(k, v);
  return h;
}

export function headersToRecord(h: MsgHdrs | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!h) return out;
  for (const key of h.keys()) out[key] = h.get(key);
  return out;
}

export function readEventMeta(h: MsgHdrs | undefined): EventMeta {
  const get = (k: string) => (h?.has(k) ? h.get(k) : undefined);
  const version = get(HEADERS.schemaVersion);
  return {
    // Nats-Msg-Id equals the event id for relay-published events; Ferry-Event-Id survives replays.
    eventId: get(HEADERS.eventId) ?? get(HEADERS.msgId),
    type: get(HEADERS.eventType),
    version: version ? Number(version) : undefined,
    occurredAt: get(HEADERS.occurredAt),
    correlationId: get(HEADERS.correlationId),
    causationId: get(HEADERS.causationId),
  };
}
