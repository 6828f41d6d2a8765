import { isPostgresConnectionError } from '../health/dependency-monitor.js';
import type { Logger } from '../logging/logger.js';

export interface PeriodicOptions {
  /** What the task is, for its log lines. */
  name: string;
  /** Between runs. */
  intervalMs: number;
  /** Before the first run. Default: one interval (capped at 5 s). */
  initialDelayMs?: number;
  /** ± this fraction of the interval, so replicas do not run in lockstep. Default 0.1. */
  jitter?: number;
  logger: Logger;
  run: () => Promise<unknown>;
}

/**
 * A background task run every `intervalMs` (sweeps, housekeeping): never two runs at once, a failure
 * logged (quietly for a database outage, which the dependency monitor reports once) and retried at the
 * next tick, `stop()` waiting for the run in progress. Its timer never keeps the process alive.
 */
export class Periodic {
  private timer?: NodeJS.Timeout;
  private running?: Promise<unknown>;
  private stopped = false;

  constructor(private readonly options: PeriodicOptions) {}

  start(): void {
    this.schedule(this.options.initialDelayMs ?? Math.min(5_000, this.options.intervalMs));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.options.run().catch((err) => {
        if (!isPostgresConnectionError(err))
          this.options.logger.warn({ err, task: this.options.name }, `${this.options.name} failed`);
      });
      void this.running.finally(() => {
        const jitter = this.options.jitter ?? 0.1;
        this.schedule(this.options.intervalMs * (1 - jitter + Math.random() * 2 * jitter));
      });
    }, ms);
    this.timer.unref();
  }
}
