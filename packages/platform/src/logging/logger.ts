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
    options.destination ?? pino.destination({ sync: false }),
  );
}
