import {
  BULK_RUN_STREAM_EVENTS,
  type BulkRun,
  type BulkRunStatus,
  bulkRunEvents,
  bulkRunRpc,
  bulkRunTerminalEvent,
  isTerminalBulkRun,
  type RpcCallContext,
  STREAMS,
} from '@ferry/contracts';
import { type Logger, type RpcClient, unavailable } from '@ferry/platform';
import { type Consumer, type ConsumerMessages, DeliverPolicy, type JsMsg } from '@nats-io/jetstream';
import type { JetStreamAccess } from '../http/route.js';
import { EncodedFrame, type EventChannel, type EventSourceHandle } from '../sse/event-stream.js';

function terminalEventOf(status: BulkRunStatus): string {
  const name = bulkRunTerminalEvent(status);
  if (!name) throw new Error(`${status} is not a terminal status`);
  return name;
}

export interface BulkRunRelayOptions {
  runId: string;
  /** The caller's RPC context: QA scopes `get` to its organization (another org's run is not found). */
  call: RpcCallContext;
  rpc: RpcClient;
  jetstream: JetStreamAccess;
  log: Logger;
  /** The client's Last-Event-ID (a stream sequence), when it resumes. */
  lastEventId?: number;
  /** Counts the consumer while it lives (the hub's subscription gauge). */
  holdSubscription: () => () => void;
  /** Decodes a stream message once for every client of this process (EventStreamHub.shared). */
  shared: <T>(key: string, compute: () => T) => T;
}

/** A stream message as every client gets it: the run, and the frame (same id and data for all). */
interface RelayedEvent {
  run: BulkRun;
  terminal: boolean;
  frame: EncodedFrame;
}

/**
 * Relays one bulk run's events from the QA stream to one client. The stream, not process memory, is the
 * source, so any gateway replica serves any run whichever QA replica works on it. Order of work
 * (DESIGN §8): subscribe first (an ordered consumer from just after the stream's last sequence L), then
 * read the snapshot and send it with id L, then relay each event with its stream sequence as id, and
 * close after the terminal frame. Events older than the snapshot can still arrive after it; a frame
 * whose `version` is not above the highest sent is dropped.
 */
export class BulkRunRelay implements EventSourceHandle {
  private readonly stream: string;
  private consumer: Consumer | undefined;
  private creating: Promise<Consumer> | undefined;
  private messages: ConsumerMessages | undefined;
  private releaseSubscription: (() => void) | undefined;
  private disposed = false;
  /** The run as read when the client connected (the 404 check). */
  private first!: BulkRun;
  /** The snapshot a new client gets, read after subscribing. */
  private snapshot: BulkRun | undefined;
  /** The sequence the client holds: frames after it are relayed. */
  private cursor = 0;
  /** The id of the snapshot frame for a new client (or one whose id aged out); undefined when resuming. */
  private snapshotId: number | undefined;
  private highestVersion = -1;
  /** A terminal snapshot seen without its event: sent once the consumer has passed `until`. */
  private pendingTerminal: { run: BulkRun; until: number } | undefined;
  private channel: EventChannel | undefined;

  constructor(private readonly options: BulkRunRelayOptions) {
    this.stream = options.jetstream.ns.stream(STREAMS.QA.name);
  }

  private subject(event: 'progress' | 'finished' | '*'): string {
    return this.options.jetstream.ns.subject(`qa.evt.bulk_run.${event}.v1.${this.options.runId}`);
  }

  /** Logged here: the 503 it becomes is logged only at debug (outages are logged where they are detected). */
  private jetstreamDown(err: unknown): never {
    this.options.log.warn({ err }, 'jetstream did not answer; event stream refused');
    throw unavailable('nats', err);
  }

  private readRun(): Promise<BulkRun> {
    return this.options.rpc.call(bulkRunRpc.get, { id: this.options.runId }, this.options.call);
  }

  /**
   * Everything that can fail with a problem+json happens here, before the response starts. JetStream
   * not answering is an outage (503 naming NATS), not an internal error.
   */
  async prepare(): Promise<void> {
    const { jsm, js } = this.options.jetstream;
    this.first = await this.readRun();
    const { state } = await jsm.streams.info(this.stream).catch((err) => this.jetstreamDown(err));
    const last = state.last_seq;
    const resumeFrom = this.options.lastEventId;
    // Resumable when nothing after the id has aged out of the stream (and the id is not from the future).
    const resumable = resumeFrom !== undefined && resumeFrom >= state.first_seq - 1 && resumeFrom <= last;
    if (!resumable) {
      this.snapshotId = last;
      this.cursor = last;
      // A finished run needs no subscription: its snapshot says everything, and nothing follows.
      if (isTerminalBulkRun(this.first.status)) return;
    } else {
      this.cursor = resumeFrom;
    }
    if (this.disposed) return;
    this.releaseSubscription = this.options.holdSubscription();
    this.creating = js.consumers.get(this.stream, {
      filter_subjects: this.subject('*'),
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: this.cursor + 1,
      // The server removes it by itself if this process dies without deleting it.
      inactive_threshold: 60_000,
    });
    this.consumer = await this.creating.catch((err) => this.jetstreamDown(err));
    // Only now, with the consumer in place: an event published meanwhile is in this read or comes through
    // the consumer (or both: the version check drops the repeat). A failure here is still a problem+json.
    if (this.snapshotId !== undefined) this.snapshot = await this.readRun();
  }

  async start(channel: EventChannel): Promise<void> {
    this.channel = channel;
    if (this.snapshotId !== undefined) {
      const snapshot = this.snapshot ?? this.first;
      this.highestVersion = snapshot.version;
      channel.send({
        event: BULK_RUN_STREAM_EVENTS.snapshot,
        id: String(this.snapshotId),
        data: JSON.stringify(snapshot),
      });
      if (isTerminalBulkRun(snapshot.status)) {
        this.sendTerminal(snapshot, this.snapshotId);
        return;
      }
    } else if (isTerminalBulkRun(this.first.status)) {
      await this.expectTerminal(this.first);
    }
    // The heartbeat re-reads the snapshot, so a lost terminal event still ends the stream.
    channel.onHeartbeat(async () => {
      if (this.pendingTerminal) return;
      const run = await this.readRun();
      if (isTerminalBulkRun(run.status)) await this.expectTerminal(run);
    });
    if (!this.consumer || channel.signal.aborted) return;
    // A callback rather than an async iterator: one synchronous call per message, no promise per
    // message per client. It only queues frames, so a slow client never slows it (or anyone else).
    const messages = await this.consumer.consume({
      max_messages: 32,
      callback: (m) => {
        if (!channel.signal.aborted) this.relay(m, channel);
      },
    });
    if (this.disposed) {
      // dispose() ran while consume() was starting; it deleted the consumer, this stops the pulls.
      messages.stop();
      return;
    }
    this.messages = messages;
    void messages.closed().then((err) => {
      if (this.disposed) return;
      if (err) this.options.log.warn({ err, run_id: this.options.runId }, 'bulk run relay consumer failed');
      // The client reconnects with its last id, to this replica or another.
      channel.close();
    });
  }

  private relay(m: JsMsg, channel: EventChannel): void {
    this.cursor = m.seq;
    const event = this.options.shared(`${this.stream}:${m.seq}`, () => this.decode(m));
    if (!event || event.run.run_id !== this.options.runId) {
      this.checkPendingTerminal(channel);
      return;
    }
    if (event.terminal) {
      channel.send(event.frame);
      channel.close();
      return;
    }
    if (event.run.version > this.highestVersion) {
      this.highestVersion = event.run.version;
      channel.send(event.frame);
    }
    this.checkPendingTerminal(channel);
  }

  /** Parsed against the contract once per message and process; undefined when unreadable. */
  private decode(m: JsMsg): RelayedEvent | undefined {
    const local = this.options.jetstream.ns.localSubject(m.subject) ?? '';
    const finished = local.startsWith(`${bulkRunEvents.finished.type}.`);
    const def = finished ? bulkRunEvents.finished : bulkRunEvents.progress;
    let run: BulkRun;
    try {
      const parsed = def.schema.safeParse(m.json());
      if (!parsed.success) throw parsed.error;
      run = parsed.data.run;
    } catch (err) {
      // Skipped, not fatal: the next message (or the heartbeat's snapshot) carries the whole state.
      this.options.log.warn({ err, seq: m.seq, subject: m.subject }, 'skipped an unreadable bulk run event');
      return undefined;
    }
    const terminal = finished && isTerminalBulkRun(run.status);
    const name = terminal ? terminalEventOf(run.status) : BULK_RUN_STREAM_EVENTS.progress;
    return { run, terminal, frame: new EncodedFrame({ event: name, id: String(m.seq), data: JSON.stringify(run) }) };
  }

  /**
   * The run is over but its terminal event has not come through (not yet published, or lost): relay
   * what the stream still holds for the run, then end with a terminal frame built from the snapshot.
   */
  private async expectTerminal(run: BulkRun): Promise<void> {
    const until = Math.max(await this.lastSeqOf('progress'), await this.lastSeqOf('finished'));
    this.pendingTerminal = { run, until };
    if (this.channel) this.checkPendingTerminal(this.channel);
  }

  private checkPendingTerminal(channel: EventChannel): void {
    if (!this.pendingTerminal || this.cursor < this.pendingTerminal.until || channel.signal.aborted) return;
    this.sendTerminal(this.pendingTerminal.run, this.cursor);
  }

  /**
   * 0 when the subject holds no message (none published, or aged out): nothing to wait for. Any other
   * failure propagates: guessing 0 would end the stream before the events still to come.
   */
  private async lastSeqOf(event: 'progress' | 'finished'): Promise<number> {
    const m = await this.options.jetstream.jsm.streams.getMessage(this.stream, { last_by_subj: this.subject(event) });
    return m?.seq ?? 0;
  }

  private sendTerminal(run: BulkRun, id: number): void {
    const channel = this.channel;
    if (!channel || channel.signal.aborted) return;
    channel.send({ event: terminalEventOf(run.status), id: String(id), data: JSON.stringify(run) });
    channel.close();
  }

  /**
   * Called by the event stream exactly once (and by the route when `prepare` failed); safe at any point
   * of `prepare`/`start`: a consumer still being created is waited for, then stopped and deleted.
   */
  async dispose(): Promise<void> {
    this.disposed = true;
    await this.creating?.catch(() => undefined);
    const { messages, consumer } = this;
    this.messages = undefined;
    this.consumer = undefined;
    messages?.stop();
    // Deleted now rather than left to inactive_threshold: a client that comes and goes leaves nothing.
    await consumer?.delete().catch(() => undefined);
    this.releaseSubscription?.();
    this.releaseSubscription = undefined;
  }
}
