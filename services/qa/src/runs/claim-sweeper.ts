import { CONFIG, inTransaction, LOGGER, type Logger, METRICS, type Metrics, Periodic } from '@ferry/platform';
import { Inject, Injectable, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import { Kysely } from 'kysely';
import type { QaDB } from '../database.js';
import { QaEpisodeRepository } from '../episodes/qa-episode.repository.js';
import type { QaConfig } from '../manifest.js';
import { claimsExpiredCounter, QaRunner } from './qa-runner.js';

/** Episodes one sweep looks at, at most (per kind of work); the rest wait for the next sweep. */
const SWEEP_BATCH = 100;

/**
 * Releases claims whose lease lapsed (a checker died mid-check): the episode goes back to the status it
 * had, so its redelivered message (auto QA), its bulk item or a person can check it again. And re-drives auto
 * QA that gave up: an episode still `pending_qa` long after anything touched it is asked for again
 * (`auto_check_requested`), at most once per QA_REDRIVE_AFTER_MS and QA_REDRIVE_MAX times, and not while its last
 * request waits unattempted. Safe on any number of replicas (SKIP LOCKED, and the re-drive is stamped on the row in
 * the transaction that requests it).
 */
@Injectable()
export class ClaimSweeper implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly task: Periodic;
  private readonly expired;
  private readonly redriven;
  private readonly redrivesExhausted;

  constructor(
    private readonly db: Kysely<QaDB>,
    private readonly episodes: QaEpisodeRepository,
    private readonly runner: QaRunner,
    @Inject(CONFIG) private readonly config: QaConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(METRICS) metrics: Metrics,
  ) {
    this.expired = claimsExpiredCounter(metrics);
    this.redriven = metrics.counter(
      'ferry_qa_auto_redriven_total',
      'Stalled episodes (pending_qa, auto QA gave up or never came) for which auto QA was requested again.',
    );
    this.redrivesExhausted = metrics.counter(
      'ferry_qa_auto_redrives_exhausted_total',
      'Episodes re-driven for the last time (QA_REDRIVE_MAX); if that fails too they need a person.',
    );
    this.task = new Periodic({
      name: 'QA claim sweep',
      intervalMs: config.QA_CLAIM_SWEEP_MS,
      logger,
      run: async () => {
        await this.sweep();
        await this.redrive();
      },
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
      const lapsed = await this.episodes.expiredClaims(trx, SWEEP_BATCH);
      for (const e of lapsed) {
        await this.runner.releaseLocked(trx, e, 'claim_released');
        this.logger.warn({ episode_id: e.id, claimed_by: e.claimed_by }, 'QA claim lapsed (checker gone); released');
      }
      this.expired.inc(lapsed.length);
      return lapsed.length;
    });
  }

  /**
   * Asks auto QA again for the episodes it left `pending_qa`: after max_deliver its message is dead-lettered and
   * nothing else would ever check them. Again only once a check attempted the last request (or
   * QA_REDRIVE_UNANSWERED_MS passed without one): a backlog on `qa__auto-recheck` is not requested over and over.
   * `now` (default: the database's clock) is what tests move forward.
   */
  async redrive(now?: Date): Promise<number> {
    const max = this.config.QA_REDRIVE_MAX;
    const redriven = await inTransaction(this.db, async (trx) => {
      const at = now ?? (await this.episodes.now(trx));
      const stalled = await this.episodes.stalled(trx, {
        before: new Date(at.getTime() - this.config.QA_REDRIVE_AFTER_MS),
        unansweredBefore: new Date(at.getTime() - this.config.QA_REDRIVE_UNANSWERED_MS),
        maxRedrives: max,
        limit: SWEEP_BATCH,
      });
      for (const e of stalled) {
        const count = e.redrive_count + 1;
        await this.episodes.update(trx, e.id, { redriven_at: at, redrive_count: count });
        await this.runner.requestAutoCheck(trx, e, 'stalled', count, at);
      }
      return stalled.map((e) => ({ e, count: e.redrive_count + 1 }));
    });
    // Logged and counted once the requests committed.
    for (const { e, count } of redriven) {
      const fields = { episode_id: e.id, organization_id: e.organization_id, redrive: count, max };
      if (count >= max) {
        this.redrivesExhausted.inc();
        this.logger.error(fields, 'auto QA re-driven for the last time; if it fails again the episode needs a person');
      } else {
        this.logger.warn(fields, 'auto QA left the episode pending; check requested again');
      }
    }
    this.redriven.inc(redriven.length);
    return redriven.length;
  }
}
