import { type Kysely, sql } from 'kysely';
import type { Logger } from '../logging/logger.js';
import { Periodic } from './periodic.js';

export interface HousekeeperOptions {
  db: Kysely<any>;
  logger: Logger;
  /** Between passes. Default 10 minutes. */
  intervalMs?: number;
}

/**
 * Trims the messaging tables: published outbox rows after 7 days, inbox rows after 8 days (they must
 * outlive the streams' 7-day max_age, or a late redelivery would be applied twice), command log
 * entries after 2 days (idempotency keys live 24 h). Deletes in small batches to keep locks short.
 */
export class Housekeeper {
  private task?: Periodic;

  constructor(private readonly options: HousekeeperOptions) {}

  start(): void {
    this.task ??= new Periodic({
      name: 'housekeeping pass',
      intervalMs: this.options.intervalMs ?? 600_000,
      // Replicas booted together do not all trim at once.
      initialDelayMs: 5_000 + Math.random() * 5_000,
      logger: this.options.logger,
      run: () => this.pass(),
    });
    this.task.start();
  }

  async stop(): Promise<void> {
    await this.task?.stop();
  }

  async pass(): Promise<Record<string, number>> {
    const targets = [
      ['outbox', sql`published_at < now() - interval '7 days'`],
      ['inbox', sql`received_at < now() - interval '8 days'`],
      ['command_log', sql`created_at < now() - interval '2 days'`],
    ] as const;
    const removed: Record<string, number> = {};
    for (const [table, condition] of targets) {
      removed[table] = 0;
      for (;;) {
        const res = await sql`delete from ${sql.table(table)} where ctid = any(array(
          select ctid from ${sql.table(table)} where ${condition} limit 5000))`.execute(this.options.db);
        const n = Number(res.numAffectedRows ?? 0);
        removed[table] += n;
        if (n < 5000) break;
      }
    }
    return removed;
  }
}
