import type { Logger, Metrics } from '@ferry/platform';
import type { SseSink } from './sse-sink.js';

/** One server-sent event (WHATWG HTML §9.2): `event`, `id` and `data` lines, or a `:` comment. */
export interface SseFrame {
  event?: string;
  id?: string;
  data?: string;
}

const encoder = new TextEncoder();

function field(name: string, value: string): string {
  // A CR, LF or NUL would end the line early or (in an id) make the browser ignore it.
  if (/[\r\n\0]/.test(value)) throw new Error(`SSE ${name} must not contain CR, LF or NUL`);
  return `${name}: ${value}\n`;
}

export function encodeFrame(frame: SseFrame): Uint8Array {
  let text = '';
  if (frame.event !== undefined) text += field('event', frame.event);
  if (frame.id !== undefined) text += field('id', frame.id);
  for (const line of (frame.data ?? '').split(/\r\n|\r|\n/)) text += `data: ${line}\n`;
  return encoder.encode(`${text}\n`);
}

/**
 * A frame encoded once and sent to many clients as the same bytes (a relayed event whose id and data do
 * not depend on the client): fan-out then costs a socket write per client, not a JSON round trip.
 */
export class EncodedFrame {
  readonly bytes: Uint8Array;
  constructor(readonly frame: SseFrame) {
    this.bytes = encodeFrame(frame);
  }
}

export function encodeComment(text: string): Uint8Array {
  return encoder.encode(`: ${text.replace(/[\r\n]/g, ' ')}\n\n`);
}

/** How every event stream of this gateway behaves; each default is what DESIGN §8 and the anchors ask. */
export interface EventStreamOptions {
  /** `: ping` comment interval, which also runs each stream's heartbeat check. Default 15 s (proxies cut ~60 s of silence). */
  heartbeatMs?: number;
  /** The `retry:` hint: how long a browser waits before reconnecting. Default 3 s. */
  retryMs?: number;
  /**
   * Frames a client may have waiting while its socket does not drain. Past this (or `maxQueuedBytes`)
   * it is disconnected and resumes by id. Default 256. Raising it lets slow clients cost more memory.
   */
  maxQueuedFrames?: number;
  /** Bytes a client may have waiting. Default 1 MiB. */
  maxQueuedBytes?: number;
  /**
   * A socket that has not drained for this long is dropped even with room left in the queue (a peer
   * that vanished without a FIN keeps a socket open for many minutes). Default 30 s.
   */
  stallTimeoutMs?: number;
}

type ResolvedOptions = Required<EventStreamOptions>;

export function resolveEventStreamOptions(options: EventStreamOptions = {}): ResolvedOptions {
  return {
    heartbeatMs: options.heartbeatMs ?? 15_000,
    retryMs: options.retryMs ?? 3_000,
    maxQueuedFrames: options.maxQueuedFrames ?? 256,
    maxQueuedBytes: options.maxQueuedBytes ?? 1024 * 1024,
    stallTimeoutMs: options.stallTimeoutMs ?? 30_000,
  };
}

/** Decoded messages kept for sharing: enough for a burst to reach every client once. */
const SHARED_ENTRIES = 256;

export type CloseReason = 'done' | 'client_left' | 'slow_client' | 'shutdown' | 'error';

/** What a route's event source sees of its connection. */
export interface EventChannel {
  /** Queues a frame; never waits for the client. False when the stream is closed (or this frame overflowed it). */
  send(frame: SseFrame | EncodedFrame): boolean;
  /** Ends the stream after what was sent (the client should not reconnect: its terminal frame was sent). */
  close(): void;
  /** Aborted when the stream ends, whatever the reason; `reason` is the CloseReason. */
  readonly signal: AbortSignal;
  /** Runs after each `: ping`; a check still running when the next ping comes is not started twice. */
  onHeartbeat(check: () => Promise<void> | void): void;
}

/**
 * A route's event source. `start` runs once the response is open; `dispose` runs exactly once whatever
 * happens (normal end, client gone, slow client, shutdown, an error, or a stream that never opened),
 * and must release everything `start` or the route's preparation took (consumers, subscriptions).
 */
export interface EventSourceHandle {
  start(channel: EventChannel): void | Promise<void>;
  dispose(): void | Promise<void>;
}

/**
 * The gateway's live event streams and what they hold, for the metrics and for shutdown. Counts are
 * kept where things are acquired and released, so a leak shows as a gauge that does not return to 0.
 */
export class EventStreamHub {
  private readonly open = new Set<EventStreamConnection>();
  private liveTimers = 0;
  private liveSubscriptions = 0;
  private stopping = false;
  private readonly memo = new Map<string, unknown>();
  readonly frames?: ReturnType<Metrics['counter']>;
  readonly dropped?: ReturnType<Metrics['counter']>;
  readonly closed?: ReturnType<Metrics['counter']>;
  readonly options: ResolvedOptions;

  constructor(
    options: EventStreamOptions = {},
    readonly metrics?: Metrics,
  ) {
    this.options = resolveEventStreamOptions(options);
    if (!metrics) return;
    metrics.gauge('ferry_sse_connections', 'Open server-sent event streams.', () => this.connections);
    metrics.gauge(
      'ferry_sse_subscriptions',
      'Live relay subscriptions (ordered JetStream consumers) held for event streams.',
      () => this.subscriptions,
    );
    metrics.gauge(
      'ferry_sse_timers',
      'Live timers held by event streams (heartbeats, stall checks).',
      () => this.timers,
    );
    this.frames = metrics.counter('ferry_sse_frames_total', 'Event frames queued to clients, by event name.', [
      'event',
    ]);
    this.dropped = metrics.counter(
      'ferry_sse_slow_clients_dropped_total',
      'Event stream clients disconnected because they did not read (queue full or socket stalled).',
    );
    this.closed = metrics.counter('ferry_sse_closed_total', 'Event streams ended, by reason.', ['reason']);
  }

  get connections(): number {
    return this.open.size;
  }
  get timers(): number {
    return this.liveTimers;
  }
  get subscriptions(): number {
    return this.liveSubscriptions;
  }

  /**
   * Work shared by every stream of this process for one immutable source message (decoding a stream
   * message into a frame): computed once, kept for the last `SHARED_ENTRIES` keys.
   */
  shared<T>(key: string, compute: () => T): T {
    if (this.memo.has(key)) return this.memo.get(key) as T;
    const value = compute();
    this.memo.set(key, value);
    if (this.memo.size > SHARED_ENTRIES) this.memo.delete(this.memo.keys().next().value!);
    return value;
  }

  /** Counts a subscription until the returned release is called (once; later calls do nothing). */
  holdSubscription(): () => void {
    this.liveSubscriptions++;
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      this.liveSubscriptions--;
    };
  }

  /** A timer counted while it is live. */
  setTimer(fn: () => void, ms: number, repeat: boolean): () => void {
    this.liveTimers++;
    let live = true;
    const handle = repeat
      ? setInterval(fn, ms)
      : setTimeout(() => {
          if (live) {
            live = false;
            this.liveTimers--;
          }
          fn();
        }, ms);
    handle.unref();
    return () => {
      if (!live) return;
      live = false;
      this.liveTimers--;
      clearInterval(handle);
    };
  }

  /** False once the server is shutting down: new streams are refused (503) so clients go to another replica. */
  get accepting(): boolean {
    return !this.stopping;
  }

  /**
   * Server shutdown: refuses new streams and ends every open one gracefully, closing its connection
   * (a keep-alive socket would otherwise hold the server open and carry the client's reconnect back to
   * this stopping process). Clients reconnect elsewhere with their last id.
   */
  async closeAll(): Promise<void> {
    this.stopping = true;
    await Promise.allSettled([...this.open].map((c) => c.shutdown()));
  }

  /**
   * Opens a stream on `sink` and starts `source` on it. Once shutdown has begun the stream is ended at
   * once as a shutdown close, and the source disposed: its request passed the `accepting`
   * check before `closeAll` and was still being prepared, so `closeAll` never saw it, and left open it
   * would hold the server's close until the shutdown timeout.
   */
  connect(sink: SseSink, source: EventSourceHandle, log: Logger, signal?: AbortSignal): EventStreamConnection {
    const connection = new EventStreamConnection(this, sink, source, log);
    this.open.add(connection);
    connection.begin(signal);
    if (this.stopping) void connection.shutdown();
    return connection;
  }

  /** @internal */
  forget(connection: EventStreamConnection): void {
    this.open.delete(connection);
  }
}

/**
 * One client's stream: frames go straight to the socket while it drains, then into a bounded queue;
 * overflow or a stall drops the client. Nothing here ever waits on the client, so a producer calling
 * `send` (a consumer loop) is never slowed by it.
 */
export class EventStreamConnection implements EventChannel {
  private readonly controller = new AbortController();
  private readonly queue: Uint8Array[] = [];
  private queuedBytes = 0;
  private blocked = false;
  private finished = false;
  private checking = false;
  private readonly checks: (() => Promise<void> | void)[] = [];
  private readonly releases: (() => void)[] = [];
  private stopStallTimer: (() => void) | undefined;
  private disposed: Promise<void> | undefined;
  private readonly opened = performance.now();
  private sent = 0;

  constructor(
    private readonly hub: EventStreamHub,
    private readonly sink: SseSink,
    private readonly source: EventSourceHandle,
    private readonly log: Logger,
  ) {}

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** @internal Writes the retry hint and `: connected`, arms the heartbeat, then starts the source. */
  begin(requestSignal?: AbortSignal): void {
    const { options } = this.hub;
    // Both the socket's `close` and the request's abort signal end the stream: cleanup must not hang
    // on one signal that some runtime or proxy setup fails to fire (hono#1770, node-server#107).
    const onAbort = () => this.finish('client_left');
    requestSignal?.addEventListener('abort', onAbort);
    this.releases.push(
      () => requestSignal?.removeEventListener('abort', onAbort),
      this.sink.listen({ drain: () => this.drain(), close: () => this.finish('client_left') }),
      this.hub.setTimer(() => this.heartbeat(), options.heartbeatMs, true),
    );
    if (requestSignal?.aborted) {
      this.finish('client_left');
      return;
    }
    this.write(encoder.encode(`retry: ${options.retryMs}\n\n`));
    this.write(encodeComment('connected'));
    if (this.finished) return;
    Promise.resolve()
      .then(() => this.source.start(this))
      .catch((err) => {
        this.log.error({ err }, 'event stream source failed');
        this.finish('error');
      });
  }

  send(frame: SseFrame | EncodedFrame): boolean {
    if (this.finished) return false;
    const encoded = frame instanceof EncodedFrame ? frame : new EncodedFrame(frame);
    const ok = this.write(encoded.bytes);
    if (ok) {
      this.sent++;
      this.hub.frames?.inc({ event: encoded.frame.event ?? 'message' });
    }
    return ok;
  }

  close(): void {
    this.finish('done');
  }

  onHeartbeat(check: () => Promise<void> | void): void {
    this.checks.push(check);
  }

  /** @internal */
  shutdown(): Promise<void> {
    this.finish('shutdown');
    return this.disposed ?? Promise.resolve();
  }

  private write(chunk: Uint8Array): boolean {
    if (this.finished) return false;
    if (!this.blocked && this.queue.length === 0) {
      if (!this.sink.write(chunk)) this.block();
      return true;
    }
    const { maxQueuedFrames, maxQueuedBytes } = this.hub.options;
    if (this.queue.length + 1 > maxQueuedFrames || this.queuedBytes + chunk.byteLength > maxQueuedBytes) {
      this.finish('slow_client');
      return false;
    }
    this.queue.push(chunk);
    this.queuedBytes += chunk.byteLength;
    return true;
  }

  private block(): void {
    this.blocked = true;
    this.stopStallTimer ??= this.hub.setTimer(() => this.finish('slow_client'), this.hub.options.stallTimeoutMs, false);
  }

  private drain(): void {
    if (this.finished) return;
    this.blocked = false;
    this.stopStallTimer?.();
    this.stopStallTimer = undefined;
    while (this.queue.length > 0 && !this.blocked) {
      const chunk = this.queue.shift()!;
      this.queuedBytes -= chunk.byteLength;
      if (!this.sink.write(chunk)) this.block();
    }
  }

  private heartbeat(): void {
    if (!this.write(encodeComment('ping')) || this.checking) return;
    this.checking = true;
    void (async () => {
      try {
        for (const check of this.checks) {
          if (this.finished) break;
          await check();
        }
      } catch (err) {
        this.log.warn({ err }, 'event stream heartbeat check failed');
      } finally {
        this.checking = false;
      }
    })();
  }

  /** Idempotent: the first reason wins; every listener, timer and the source's resources are released. */
  private finish(reason: CloseReason): void {
    if (this.finished) return;
    this.finished = true;
    for (const release of this.releases.splice(0)) release();
    this.stopStallTimer?.();
    this.stopStallTimer = undefined;
    if (reason === 'done' || reason === 'shutdown') {
      // What is queued is bounded; hand it to the socket so the terminal frame is not lost, then end.
      for (const chunk of this.queue.splice(0)) this.sink.write(chunk);
      this.sink.end({ closeConnection: reason === 'shutdown' });
    } else {
      this.queue.length = 0;
      this.sink.destroy();
    }
    this.queuedBytes = 0;
    if (reason === 'slow_client') this.hub.dropped?.inc();
    this.hub.closed?.inc({ reason });
    this.controller.abort(reason);
    this.log.info(
      { reason, frames: this.sent, duration_ms: Math.round(performance.now() - this.opened) },
      'event stream closed',
    );
    this.disposed = Promise.resolve()
      .then(() => this.source.dispose())
      .catch((err) => this.log.warn({ err }, 'event stream cleanup failed'))
      .finally(() => this.hub.forget(this));
  }
}
