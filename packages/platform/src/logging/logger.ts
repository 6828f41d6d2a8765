import { type Logger, pino } from 'pino';
import { currentTrace } from './context.js';

export type { Logger } from 'pino';

export interface LoggerOptions {
  /** Service name, on every line as `service`. */
  service: string;
  /** Default `info`. */
  level?: string;
  /** Where lines go; default stdout. Tests pass a stream to capture them. */
  destination?: NodeJS.WritableStream;
}

/** JSON lines (pino) with the current request id mixed into every line logged inside a trace. */
export function createLogger(options: LoggerOptions): Logger {
  let destination: NodeJS.WritableStream | ReturnType<typeof pino.destination> | undefined = options.destination;
  if (!destination) {
    const stdout = pino.destination({ sync: false });
    // The reader of our stdout went away (a launcher killed with SIGKILL): log lines have nowhere to
    // go, but the process must still shut down cleanly rather than die of an unhandled EPIPE.
    stdout.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') process.stderr.write(`log destination error: ${err.message}\n`);
    });
    destination = stdout;
  }
  return pino(
    {
      level: options.level ?? 'info',
      base: { service: options.service },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      mixin() {
        const trace = currentTrace();
        return trace.requestId ? { request_id: trace.requestId } : {};
      },
      serializers: { err: pino.stdSerializers.err },
    },
    destination,
  );
}
