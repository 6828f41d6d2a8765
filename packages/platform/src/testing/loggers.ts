import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../logging/logger.js';

export function silentLogger(service = 'test'): Logger {
  return createLogger({ service, level: process.env.TEST_LOG_LEVEL ?? 'silent' });
}

/** A logger whose JSON lines are kept for assertions. */
export function captureLogger(service = 'test'): { logger: Logger; lines: () => Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n')) if (line.trim()) lines.push(JSON.parse(line));
      done();
    },
  });
  return { logger: createLogger({ service, level: 'debug', destination }), lines: () => lines };
}
