import {
  CONFIG,
  inTransaction,
  isPostgresConnectionError,
  LOGGER,
  type Logger,
  METRICS,
  type Metrics,
} from '@ferry/platform';
import { Inject, Injectable, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import { Kysely } from 'kysely';
import type { QaDB } from '../database.js';
import { QaEpisodeRepository } from '../episodes/qa-episode.repository.js';
import type { QaConfig } from '../manifest.js';
import { QaRunner } from './qa-runner.js';

/**
 * Releases claims whose lease lapsed (a checker died mid-check): the episode goes back to the status it
 * had, so its redelivered message (auto QA), its bulk item or a person can check it again. Safe on any
 * number of replicas (SKIP LOCKED).
 */
@Injectable()
export class ClaimSweeper implements OnApplicationBootstrap, OnModuleDestroy {
  private timer?: NodeJS.Timeout;
  private running?: Promise<unknown>;
  private readonly expired;

  constructor(
    private readonly db: Kysely<QaDB>,
    private readonly episodes: QaEpisodeRepository,
    private readonly runner: QaRunner,
    @Inject(CONFIG) private readonly config: QaConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(METRICS) metrics: Metrics,
  ) {
    this.expired = metrics.counter('ferry_qa_claims_expired_total', 'QA claims released after their lease lapsed.');
  }

  onApplicationBootstrap(): void {
    const tick = () => {
      this.running = this.sweep().catch((err) => {
        if (!isPostgresConnectionError(err)) this.logger.warn({ err }, 'QA claim sweep failed');
      });
      this.timer = setTimeout(tick, this.config.QA_CLAIM_SWEEP_MS);
      this.timer.unref();
    };
    this.timer = setTimeout(tick, this.config.QA_CLAIM_SWEEP_MS);
    this.timer.unref();
  }

  async onModuleDestroy(): Promise<void> {
    clearTimeout(this.timer);
    await this.running;
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
