import { createMetrics } from '@ferry/platform';
import { captureLogger, silentLogger, waitFor } from '@ferry/platform/testing';
import { describe, expect, it } from 'vitest';
import { type EventChannel, EventStreamHub, encodeFrame } from './event-stream.js';
import { WebStreamSink } from './sse-sink.js';

const text = (b: Uint8Array) => new TextDecoder().decode(b);

/** A source that records what happened to it. */
function source(start: (channel: EventChannel) => void | Promise<void> = () => undefined) {
  const seen = { disposed: 0, channel: undefined as EventChannel | undefined };
  return {
    seen,
    handle: {
      start: (channel: EventChannel) => {
        seen.channel = channel;
        return start(channel);
      },
      dispose: () => {
        seen.disposed++;
      },
    },
  };
}

async function readAll(readable: ReadableStream<Uint8Array>): Promise<string> {
  let out = '';
  const reader = readable.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return out;
    out += text(value);
  }
}

describe('event streams', () => {
  it('encodes multi-line data as several data lines and refuses a newline in an id', () => {
    expect(text(encodeFrame({ event: 'x', id: '7', data: 'a\nb' }))).toBe('event: x\nid: 7\ndata: a\ndata: b\n\n');
    expect(() => encodeFrame({ id: '1\n2', data: '' })).toThrow(/CR, LF or NUL/);
  });

  it('writes the retry hint and a comment at once, then the frames, and disposes once on close', async () => {
    const hub = new EventStreamHub({ retryMs: 1234 });
    const sink = new WebStreamSink();
    const s = source((channel) => {
      channel.send({ event: 'hello', id: '1', data: '{}' });
      channel.close();
      channel.close();
    });
    hub.connect(sink, s.handle, silentLogger());
    expect(await readAll(sink.readable)).toBe('retry: 1234\n\n: connected\n\nevent: hello\nid: 1\ndata: {}\n\n');
    await waitFor(() => s.seen.disposed > 0, { intervalMs: 1, what: 'the source to be disposed' });
    expect(s.seen.disposed).toBe(1);
    expect([hub.connections, hub.timers]).toEqual([0, 0]);
  });

  it('drops a client that does not read once its queue is full, without waiting for it', async () => {
    const metrics = createMetrics('sse-test');
    const hub = new EventStreamHub({ maxQueuedFrames: 4, maxQueuedBytes: 1 << 20 }, metrics);
    // A 1-byte high-water mark: the sink reports full at once, as a socket that never drains would.
    const sink = new WebStreamSink(1);
    const s = source();
    hub.connect(sink, s.handle, silentLogger());
    await new Promise((r) => setTimeout(r, 0));
    const channel = s.seen.channel!;
    const accepted = Array.from({ length: 10 }, (_, i) => channel.send({ event: 'p', id: String(i), data: 'x' }));
    // The retry hint filled the sink; `: connected` and three frames fill the queue of 4; the next overflows.
    expect(accepted).toEqual([true, true, true, false, false, false, false, false, false, false]);
    expect(channel.signal.aborted).toBe(true);
    expect(channel.signal.reason).toBe('slow_client');
    await waitFor(() => s.seen.disposed > 0, { intervalMs: 1, what: 'the source to be disposed' });
    expect(s.seen.disposed).toBe(1);
    expect(await metrics.registry.getSingleMetricAsString('ferry_sse_slow_clients_dropped_total')).toMatch(/ 1$/);
    expect([hub.connections, hub.timers, hub.subscriptions]).toEqual([0, 0, 0]);
  });

  it('drops a client whose socket has not drained for the stall timeout, with room left in its queue', async () => {
    const hub = new EventStreamHub({ stallTimeoutMs: 50, heartbeatMs: 60_000 });
    const sink = new WebStreamSink(1);
    const s = source();
    hub.connect(sink, s.handle, silentLogger());
    await new Promise((r) => setTimeout(r, 0));
    const channel = s.seen.channel!;
    expect(channel.send({ event: 'p', id: '1', data: 'x' })).toBe(true);
    expect(channel.signal.aborted).toBe(false);
    await waitFor(() => channel.signal.aborted, {
      intervalMs: 5,
      timeoutMs: 2_000,
      what: 'the stalled client dropped',
    });
    expect(channel.signal.reason).toBe('slow_client');
    await waitFor(() => s.seen.disposed > 0 && hub.connections === 0, { intervalMs: 1, what: 'the source disposed' });
    expect([hub.connections, hub.timers]).toEqual([0, 0]);
  });

  it('keeps a slow client whose socket drains before the stall timeout', async () => {
    const hub = new EventStreamHub({ stallTimeoutMs: 150, heartbeatMs: 60_000 });
    const sink = new WebStreamSink(1);
    const s = source();
    hub.connect(sink, s.handle, silentLogger());
    await new Promise((r) => setTimeout(r, 0));
    const channel = s.seen.channel!;
    channel.send({ event: 'p', id: '1', data: 'x' });
    const reader = sink.readable.getReader();
    let received = '';
    // Reads a little at a time, each well inside the stall timeout: every read drains the socket.
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, 60));
      received += text((await reader.read()).value!);
    }
    expect(channel.signal.aborted).toBe(false);
    expect(received).toContain('event: p\nid: 1\n');
    channel.close();
  });

  it('pings on the heartbeat and runs the heartbeat checks, one at a time', async () => {
    const hub = new EventStreamHub({ heartbeatMs: 20 });
    const sink = new WebStreamSink();
    let checks = 0;
    const s = source((channel) => {
      channel.onHeartbeat(async () => {
        checks++;
        await new Promise((r) => setTimeout(r, 70));
        if (checks === 2) channel.close();
      });
    });
    hub.connect(sink, s.handle, silentLogger());
    const body = await readAll(sink.readable);
    expect(body.split(': ping').length - 1).toBeGreaterThanOrEqual(4);
    expect(checks).toBe(2);
  });

  it('disposes the source even when it fails to start, and when the client is gone before it starts', async () => {
    const hub = new EventStreamHub();
    const failing = source(() => {
      throw new Error('boom');
    });
    const sink = new WebStreamSink();
    const log = captureLogger();
    hub.connect(sink, failing.handle, log.logger);
    // The client sees its stream dropped (never the cause); the cause is logged.
    await expect(readAll(sink.readable)).rejects.toThrow('event stream dropped');
    expect(log.lines()).toContainEqual(
      expect.objectContaining({ msg: 'event stream source failed', err: expect.objectContaining({ message: 'boom' }) }),
    );
    expect(failing.seen.disposed).toBe(1);

    const gone = source();
    const aborted = AbortSignal.abort();
    hub.connect(new WebStreamSink(), gone.handle, silentLogger(), aborted);
    await waitFor(() => gone.seen.disposed > 0 && hub.connections === 0, {
      intervalMs: 1,
      what: 'the source to be disposed',
    });
    expect(gone.seen.channel).toBeUndefined();
    expect(gone.seen.disposed).toBe(1);
    expect([hub.connections, hub.timers]).toEqual([0, 0]);
  });

  it('refuses new streams and ends open ones on shutdown', async () => {
    const hub = new EventStreamHub();
    const sink = new WebStreamSink();
    const s = source();
    hub.connect(sink, s.handle, silentLogger());
    const body = readAll(sink.readable);
    await hub.closeAll();
    expect(hub.accepting).toBe(false);
    expect(await body).toBe('retry: 3000\n\n: connected\n\n');
    expect(s.seen.channel!.signal.reason).toBe('shutdown');
    expect(s.seen.disposed).toBe(1);
  });

  it('ends at once, as a shutdown, a stream connected after shutdown began (its request was being prepared)', async () => {
    const hub = new EventStreamHub();
    await hub.closeAll();
    const sink = new WebStreamSink();
    const s = source();
    const connection = hub.connect(sink, s.handle, silentLogger());
    // Ends by itself: nothing else will close it, and it would hold the server's shutdown open.
    expect(await readAll(sink.readable)).toBe('retry: 3000\n\n: connected\n\n');
    expect(connection.signal.reason).toBe('shutdown');
    await waitFor(() => s.seen.disposed > 0 && hub.connections === 0, {
      intervalMs: 1,
      what: 'the source to be disposed',
    });
    expect(s.seen.disposed).toBe(1);
    expect([hub.connections, hub.timers]).toEqual([0, 0]);
  }, 5_000);
});
