import http from 'node:http';

export interface ReceivedFrame {
  event: string;
  id?: string;
  data: string;
  /** Receive time (Date.now()). */
  at: number;
}

export interface EventsResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  frames: ReceivedFrame[];
  comments: string[];
  /** Every byte of the body as text (for a problem+json answer, or to check the stream's first lines). */
  raw: string;
  /** `closed`: the server ended the response; `stopped`: we stopped (stopAfter/stop()); `timeout`. */
  ended: 'closed' | 'stopped' | 'timeout';
  /** The last `retry:` value seen. */
  retry?: number;
}

export interface EventsOptions {
  headers?: Record<string, string>;
  /** Disconnect after this many frames (a client that goes away mid-stream). */
  stopAfter?: number;
  /** Give up after this long. Default 20 s. */
  timeoutMs?: number;
  onFrame?: (frame: ReceivedFrame, all: ReceivedFrame[]) => void;
}

/**
 * Reads a text/event-stream with a plain HTTP/1.1 request (its own socket), parsing frames as the
 * WHATWG spec does: `event`, `id`, `data` fields, `:` comments, a blank line dispatches.
 */
export function readEvents(
  url: string,
  options: EventsOptions = {},
): { done: Promise<EventsResult>; stop: () => void } {
  let stop: () => void = () => undefined;
  const done = new Promise<EventsResult>((resolve, reject) => {
    const frames: ReceivedFrame[] = [];
    const comments: string[] = [];
    let raw = '';
    let buffer = '';
    let retry: number | undefined;
    let current: { event?: string; id?: string; data: string[] } = { data: [] };
    let settled = false;
    const req = http.get(url, { headers: { accept: 'text/event-stream', ...options.headers }, agent: false });
    let res: http.IncomingMessage | undefined;
    const finish = (ended: EventsResult['ended']) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      resolve({ status: res?.statusCode ?? 0, headers: res?.headers ?? {}, frames, comments, raw, ended, retry });
    };
    stop = () => finish('stopped');
    const timer = setTimeout(() => finish('timeout'), options.timeoutMs ?? 20_000);
    req.on('error', (err) => {
      if (!settled && !res) {
        settled = true;
        clearTimeout(timer);
        reject(err);
      }
    });
    req.on('response', (r) => {
      res = r;
      r.setEncoding('utf8');
      r.on('data', (chunk: string) => {
        raw += chunk;
        buffer += chunk;
        let nl = buffer.search(/\r\n|\r|\n/);
        while (nl >= 0) {
          const line = buffer.slice(0, nl);
          buffer = buffer.slice(nl + (buffer.startsWith('\r\n', nl) ? 2 : 1));
          if (line === '') {
            if (current.data.length > 0 || current.event) {
              const frame: ReceivedFrame = {
                event: current.event ?? 'message',
                ...(current.id !== undefined ? { id: current.id } : {}),
                data: current.data.join('\n'),
                at: Date.now(),
              };
              frames.push(frame);
              options.onFrame?.(frame, frames);
              if (options.stopAfter !== undefined && frames.length >= options.stopAfter) {
                finish('stopped');
                return;
              }
            }
            current = { data: [] };
          } else if (line.startsWith(':')) {
            comments.push(line.slice(1).trim());
          } else {
            const colon = line.indexOf(':');
            const name = colon >= 0 ? line.slice(0, colon) : line;
            const value = colon >= 0 ? line.slice(colon + 1).replace(/^ /, '') : '';
            if (name === 'event') current.event = value;
            else if (name === 'id') current.id = value;
            else if (name === 'data') current.data.push(value);
            else if (name === 'retry' && /^\d+$/.test(value)) retry = Number(value);
          }
          nl = buffer.search(/\r\n|\r|\n/);
        }
      });
      r.on('end', () => finish('closed'));
      r.on('close', () => finish('closed'));
    });
  });
  return { done, stop: () => stop() };
}
