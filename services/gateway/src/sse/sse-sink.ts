import type { ServerResponse } from 'node:http';

/**
 * Where the bytes of one event stream go: the Node response on a real server, a web stream under
 * `app.request()`. `write` returns false once the transport's own buffer is full; the connection then
 * keeps frames in its bounded queue until `drain`. Errors never surface from `write` (a dead peer is
 * seen through `close`), unlike Hono's StreamingApi, which swallows them and keeps accepting writes.
 */
export interface SseSink {
  write(chunk: Uint8Array): boolean;
  /** Ends the response after what was written (terminal frame, shutdown); `closeConnection`: no keep-alive reuse. */
  end(options?: { closeConnection?: boolean }): void;
  /** Drops the connection at once (slow client, error): the client resumes by its last id. */
  destroy(): void;
  /** `drain`: the transport takes more again. `close`: it is gone, for whatever reason. */
  listen(handlers: { drain: () => void; close: () => void }): () => void;
}

/** Writes straight to the ServerResponse, with Node's own backpressure signal (`write()` → false, `drain`). */
export class NodeResponseSink implements SseSink {
  constructor(
    private readonly res: ServerResponse,
    status: number,
    headers: Record<string, string>,
  ) {
    res.writeHead(status, headers);
    // Frames are small and latency matters more than packet count.
    res.socket?.setNoDelay(true);
    res.flushHeaders();
  }

  write(chunk: Uint8Array): boolean {
    if (this.res.destroyed || this.res.writableEnded) return false;
    return this.res.write(chunk);
  }

  end(options: { closeConnection?: boolean } = {}): void {
    if (this.res.writableEnded || this.res.destroyed) return;
    const socket = this.res.socket;
    this.res.end(() => {
      if (options.closeConnection) socket?.end();
    });
  }

  destroy(): void {
    this.res.destroy();
  }

  listen(handlers: { drain: () => void; close: () => void }): () => void {
    // Write errors (EPIPE, ECONNRESET) end in `close`; the listener only keeps them from being unhandled.
    const onError = () => undefined;
    this.res.on('drain', handlers.drain);
    this.res.on('close', handlers.close);
    this.res.on('error', onError);
    if (this.res.destroyed) queueMicrotask(handlers.close);
    return () => {
      this.res.off('drain', handlers.drain);
      this.res.off('close', handlers.close);
      this.res.off('error', onError);
    };
  }
}

/**
 * A web ReadableStream for runtimes without a Node response (`app.request()` in tests). The reader's
 * pace is the backpressure: `write` reports full when the stream's queue is past its high-water mark,
 * and `pull` (the reader asking for more) is the drain.
 */
export class WebStreamSink implements SseSink {
  readonly readable: ReadableStream<Uint8Array>;
  private controller!: ReadableStreamDefaultController<Uint8Array>;
  private done = false;
  private onDrain: () => void = () => undefined;
  private onClose: () => void = () => undefined;

  constructor(highWaterMarkBytes = 16 * 1024) {
    this.readable = new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          this.controller = controller;
        },
        pull: () => this.onDrain(),
        cancel: () => this.finish(),
      },
      { highWaterMark: highWaterMarkBytes, size: (chunk) => chunk.byteLength },
    );
  }

  write(chunk: Uint8Array): boolean {
    if (this.done) return false;
    this.controller.enqueue(chunk);
    return (this.controller.desiredSize ?? 0) > 0;
  }

  end(): void {
    if (this.done) return;
    this.controller.close();
    this.finish();
  }

  destroy(): void {
    if (this.done) return;
    this.controller.error(new Error('event stream dropped'));
    this.finish();
  }

  listen(handlers: { drain: () => void; close: () => void }): () => void {
    this.onDrain = handlers.drain;
    this.onClose = handlers.close;
    return () => {
      this.onDrain = () => undefined;
      this.onClose = () => undefined;
    };
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    this.onClose();
  }
}
