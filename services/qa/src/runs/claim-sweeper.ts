import { CONFIG, inTransaction, LOGGER, type Logger, METRICS, type Metrics, Periodic } from '@ferry/platform';
import { Inject, Injectable, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import { Kysely } from 'kysely';
import type { QaDB } from '../database.js';
import { QaEpisodeRepository } from '../episodes/qa-episode.repository.js';
import type { QaConfig } from '../manifest.js';
import { claimsExpiredCounter, QaRunner } from './qa-runner.js';

/**
 * Releases claims whose lease lapsed (a checker died mid-check): the episode goes back to the status it
 * had, so its redelivered message (auto QA), its bulk item or a person can check it again. Safe on any
 * number of replicas (SKIP LOCKED).
 */
@Injectable()
export class ClaimSweeper implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly task: Periodic;
  private readonly expired;

  constructor(
    private readonly db: Kysely<QaDB>,
    private readonly episodes: QaEpisodeRepository,
    private readonly runner: QaRunner,
    @Inject(CONFIG) config: QaConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(METRICS) metrics: Metrics,
  ) {
    this.expired = claimsExpiredCounter(metrics);
    this.task = new Periodic({
      name: 'QA claim sweep',
      intervalMs: config.QA_CLAIM_SWEEP_MS,
      logger,
      run: () => this.sweep(),
    });
  }

  onApplicationBootstrap(): void {
    this.task.start();
  }

  async onModuleDestroy(): Promise<void> {
    await this.task.stop();
  }

  async sweep(): Promise<number> {
    return inTransaction(this.db, async (trx) => {
      const lapsed = await this.episodes.expiredClaims(trx, 100);
      for (const e of lapsed) {
        await this.runner.releaseLocked(trx, e, 'claim_released');
        this.logger.warn({ episode_id: e.id, claimed_by: e.claimed_by }, 'QA claim lapsed (checker gone); released');
      }
      this.expired.inc(lapsed.length);
      return lapsed.length;
    });
  }
}
