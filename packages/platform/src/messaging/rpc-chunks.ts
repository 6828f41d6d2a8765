import { createInbox, type MsgHdrs, type NatsConnection, headers as natsHeaders } from '@nats-io/transport-node';
import { z } from 'zod';

/**
 * Payloads larger than a NATS message (max_payload, 1 MiB by default) travel in chunks. The side
 * holding the payload serves it from a private inbox and announces it in this header; the other side
 * pulls the chunks one by one. Pulling keeps every chunk with the one process that handles the request
 * (a queue group would scatter pushed chunks over replicas) and needs no server configuration.
 */
export const CHUNKED_HEADER = 'Ferry-Chunked';

const Announcement = z.object({
  inbox: z.string().min(1),
  chunks: z.number().int().min(1),
  bytes: z.number().int().min(0),
});
type Announcement = z.infer<typeof Announcement>;

/** Bytes per chunk: well under the server's max_payload (headers and protocol overhead need room). */
export function chunkSize(nc: NatsConnection): number {
  const max = nc.info?.max_payload ?? 1024 * 1024;
  return Math.max(16 * 1024, Math.min(512 * 1024, max - 64 * 1024));
}

export interface ServedPayload {
  headers: MsgHdrs;
  /** Resolves when every chunk was fetched, or the offer timed out. */
  done: Promise<void>;
}

/** Offers `data` for pulling; stops once every chunk was served or after `timeoutMs`. */
export function servePayload(
  nc: NatsConnection,
  data: Uint8Array,
  options: { timeoutMs?: number } = {},
): ServedPayload {
  const size = chunkSize(nc);
  const chunks = Math.ceil(data.byteLength / size);
  const inbox = createInbox();
  const sub = nc.subscribe(inbox);
  const served = new Set<number>();
  const timer = setTimeout(() => sub.unsubscribe(), options.timeoutMs ?? 30_000);
  const done = (async () => {
    for await (const m of sub) {
      const index = Number(new TextDecoder().decode(m.data));
      if (!Number.isInteger(index) || index < 0 || index >= chunks) {
        m.respond(new Uint8Array());
        continue;
      }
      m.respond(data.subarray(index * size, Math.min(data.byteLength, (index + 1) * size)));
      served.add(index);
      if (served.size === chunks) break;
    }
    clearTimeout(timer);
    sub.unsubscribe();
  })();
  const h = natsHeaders();
  h.set(CHUNKED_HEADER, JSON.stringify({ inbox, chunks, bytes: data.byteLength } satisfies Announcement));
  return { headers: h, done };
}

export function isChunked(h: MsgHdrs | undefined): boolean {
  return !!h?.has(CHUNKED_HEADER);
}

/** Pulls an announced payload, chunk by chunk, and checks it arrived whole. */
export async function fetchPayload(
  nc: NatsConnection,
  h: MsgHdrs,
  options: { timeoutMs?: number } = {},
): Promise<Uint8Array> {
  const meta = Announcement.parse(JSON.parse(h.get(CHUNKED_HEADER)));
  const parts: Uint8Array[] = new Array(meta.chunks);
  // A few chunks in flight at once: latency, not bandwidth, bounds a local transfer.
  let next = 0;
  const worker = async () => {
    while (next < meta.chunks) {
      const i = next++;
      parts[i] = (await nc.request(meta.inbox, String(i), { timeout: options.timeoutMs ?? 5_000 })).data;
    }
  };
  await Promise.all(Array.from({ length: Math.min(4, meta.chunks) }, worker));
  const out = Buffer.concat(parts);
  if (out.byteLength !== meta.bytes)
    throw new Error(`chunked payload arrived with ${out.byteLength} of ${meta.bytes} bytes`);
  return out;
}
