import { BulkRun, bulkRunTerminalEvent } from '@ferry/contracts';

export interface StreamFrame {
  event: string;
  id?: string;
  data: string;
}

/** Incremental text/event-stream parser (WHATWG HTML §9.2): feed it text as it arrives, get whole frames. */
export class SseParser {
  private buffer = '';
  private current: { event?: string; id?: string; data: string[] } = { data: [] };

  push(text: string): StreamFrame[] {
    this.buffer += text;
    const out: StreamFrame[] = [];
    let nl = this.buffer.search(/\r\n|\r|\n/);
    // A lone CR at the very end may be the first half of CRLF: wait for the next chunk.
    while (nl >= 0 && !(this.buffer[nl] === '\r' && nl === this.buffer.length - 1)) {
      const line = this.buffer.slice(0, nl);
      this.buffer = this.buffer.slice(nl + (this.buffer.startsWith('\r\n', nl) ? 2 : 1));
      if (line === '') {
        if (this.current.data.length > 0) {
          out.push({
            event: this.current.event ?? 'message',
            ...(this.current.id !== undefined ? { id: this.current.id } : {}),
            data: this.current.data.join('\n'),
          });
        }
        this.current = { data: [] };
      } else if (!line.startsWith(':')) {
        const colon = line.indexOf(':');
        const name = colon >= 0 ? line.slice(0, colon) : line;
        const value = colon >= 0 ? line.slice(colon + 1).replace(/^ /, '') : '';
        if (name === 'event') this.current.event = value;
        else if (name === 'id') this.current.id = value;
        else if (name === 'data') this.current.data.push(value);
      }
      nl = this.buffer.search(/\r\n|\r|\n/);
    }
    return out;
  }
}

/** A refusal that retrying cannot fix (bad token, unknown run): the problem+json the gateway sent. */
export class FollowError extends Error {
  override readonly name = 'FollowError';
  constructor(
    readonly status: number,
    readonly problem: { code?: string; detail?: string } | undefined,
  ) {
    super(`HTTP ${status}${problem?.code ? ` ${problem.code}` : ''}: ${problem?.detail ?? 'the gateway refused'}`);
  }
}

export interface FollowOptions {
  /** The gateway's base URL, e.g. `http://127.0.0.1:3000`. */
  baseUrl: string;
  token: string;
  runId: string;
  /** Every snapshot/progress/terminal frame, with its run parsed (older versions included; keep the highest). */
  onFrame: (frame: { event: string; id?: string; run: BulkRun }) => void;
  /** Told when the connection dropped and a reconnect is coming. */
  onReconnect?: (info: { attempt: number; delayMs: number; lastEventId?: string; reason: string }) => void;
  /** Connection attempts in a row that may fail before giving up. Default 10. */
  maxAttempts?: number;
  /** Backoff between attempts; default 1 s, 2 s, 5 s, 10 s (then 10 s). */
  backoffMs?: readonly number[];
  signal?: AbortSignal;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    });
  });

/**
 * Follows a run's event stream with fetch (an Authorization header, unlike EventSource) until its
 * terminal frame, and returns the finished run. A dropped connection is resumed with Last-Event-ID, so
 * every frame arrives exactly once; the attempt counter resets on every frame received.
 */
export async function followBulkRun(options: FollowOptions): Promise<BulkRun> {
  const url = new URL(`/api/v1/data-ops/bulk-runs/${options.runId}/events`, options.baseUrl);
  const backoff = options.backoffMs ?? [1_000, 2_000, 5_000, 10_000];
  const maxAttempts = options.maxAttempts ?? 10;
  let lastEventId: string | undefined;
  let failures = 0;
  for (;;) {
    let reason: string;
    try {
      const res = await fetch(url, {
        headers: {
          authorization: `Bearer ${options.token}`,
          accept: 'text/event-stream',
          ...(lastEventId ? { 'last-event-id': lastEventId } : {}),
        },
        signal: options.signal,
      });
      if (res.status >= 400 && res.status < 500) {
        throw new FollowError(res.status, (await res.json().catch(() => undefined)) as FollowError['problem']);
      }
      if (!res.ok || !res.body) {
        reason = `HTTP ${res.status}`;
        await res.body?.cancel();
      } else {
        const parser = new SseParser();
        const decoder = new TextDecoder();
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          for (const frame of parser.push(decoder.decode(chunk, { stream: true }))) {
            const run = BulkRun.parse(JSON.parse(frame.data));
            if (frame.id !== undefined) lastEventId = frame.id;
            failures = 0;
            options.onFrame({ event: frame.event, ...(frame.id !== undefined ? { id: frame.id } : {}), run });
            if (bulkRunTerminalEvent(run.status) === frame.event) return run;
          }
        }
        reason = 'the stream ended before the run did';
      }
    } catch (err) {
      if (err instanceof FollowError || options.signal?.aborted) throw err;
      reason = (err as Error).message;
    }
    failures++;
    if (failures >= maxAttempts) throw new Error(`gave up after ${failures} failed attempts: ${reason}`);
    const delayMs = backoff[Math.min(failures - 1, backoff.length - 1)]!;
    options.onReconnect?.({ attempt: failures, delayMs, reason, ...(lastEventId ? { lastEventId } : {}) });
    await sleep(delayMs, options.signal);
    if (options.signal?.aborted) throw new Error('aborted');
  }
}
