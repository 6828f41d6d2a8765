import { uploadEvents, uploadLifecycleEvents } from '@ferry/contracts';
import { CONFIG, inTransaction, LOGGER, type Logger, METRICS, type Metrics, Outbox, Periodic } from '@ferry/platform';
import { Inject, Injectable, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import { Kysely, type Transaction } from 'kysely';
import type { TransferDB } from '../database.js';
import type { TransferConfig } from '../manifest.js';
import { uploadVerifiedPayload } from './upload.events.js';
import { UploadRepository } from './upload.repository.js';
import { UploadService } from './upload.service.js';

/**
 * Two sweeps, safe on any number of replicas (rows are claimed with SKIP LOCKED):
 * - open uploads that saw no part for UPLOAD_IDLE_TIMEOUT_MS expire, and their staged parts are deleted;
 * - verified uploads production has not acknowledged for UPLOAD_ACK_TIMEOUT_MS get `upload.verified`
 *   published again under the same event id (production's inbox makes a repeat harmless), at most
 *   UPLOAD_MAX_REPUBLISH times — bounded, logged and counted, never a blind loop.
 */
@Injectable()
export class UploadHousekeeper implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly task: Periodic;
  private readonly expired;
  private readonly republished;
  private readonly abandoned;
  private readonly sweeps;

  constructor(
    private readonly db: Kysely<TransferDB>,
    private readonly uploads: UploadRepository,
    private readonly service: UploadService,
    private readonly outbox: Outbox,
    @Inject(CONFIG) private readonly config: TransferConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(METRICS) metrics: Metrics,
  ) {
    this.expired = metrics.counter('ferry_uploads_expired_total', 'Open uploads expired for lack of activity.');
    this.republished = metrics.counter(
      'ferry_upload_verified_republished_total',
      'upload.verified events published again because production had not acknowledged them.',
    );
    this.abandoned = metrics.counter(
      'ferry_upload_ack_abandoned_total',
      'Verified uploads still unacknowledged after the last allowed republish (need a person).',
    );
    // Housekeeping is otherwise silent while there is nothing to do: a flat count says it stopped running.
    this.sweeps = metrics.counter('ferry_upload_housekeeping_sweeps_total', 'Upload housekeeping sweeps completed.');
    this.task = new Periodic({
      name: 'upload housekeeping',
      intervalMs: config.UPLOAD_SWEEP_INTERVAL_MS,
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

  /** One pass of both sweeps; returns what it did (tests drive it directly). */
  async sweep(now = new Date()): Promise<{ expired: number; republished: number }> {
    const done = {
      expired: await this.expireIdle(now),
      republished: await this.republishUnacknowledged(now),
    };
    this.sweeps.inc();
    return done;
  }

  /**
   * One short transaction per upload, so a store failing on one upload's parts neither rolls back the others
   * nor holds their locks while the store is called: that upload is logged and stays open, tried again at the
   * next sweep, and the sweep goes on with the rest.
   */
  private async expireIdle(now: Date): Promise<number> {
    const before = new Date(now.getTime() - this.config.UPLOAD_IDLE_TIMEOUT_MS);
    let expired = 0;
    for (const id of await this.uploads.idleOpen(this.db, before, 100)) {
      try {
        if (await inTransaction(this.db, (trx) => this.expire(trx, id, before))) expired++;
      } catch (err) {
        this.logger.error(
          { err, upload_id: id },
          'could not expire an idle upload; it stays open until the next sweep',
        );
      }
    }
    this.expired.inc(expired);
    return expired;
  }

  /** open → expired, its staged parts deleted first; false when it is no longer idle or another replica has it. */
  private async expire(trx: Transaction<TransferDB>, id: string, before: Date): Promise<boolean> {
    const row = await this.uploads.claimIdle(trx, id, before);
    if (!row) return false;
    await this.service.discardFiles(trx, row.id);
    const moved = (await this.uploads.transition(trx, row.id, ['open'], { status: 'expired' }))!;
    const upload = await this.service.view(trx, moved);
    await this.outbox.append(trx, uploadLifecycleEvents.expired, { upload }, { aggregateId: row.id });
    this.logger.info({ upload_id: row.id, task_id: row.task_id }, 'open upload expired; its parts were deleted');
    return true;
  }

  private async republishUnacknowledged(now: Date): Promise<number> {
    const before = new Date(now.getTime() - this.config.UPLOAD_ACK_TIMEOUT_MS);
    const max = this.config.UPLOAD_MAX_REPUBLISH;
    return inTransaction(this.db, async (trx) => {
      const rows = await this.uploads.unacknowledged(trx, before, max, 100);
      for (const row of rows) {
        // Same event id (= upload id): the relay publishes the stored event again, unchanged.
        if (!(await this.uploads.republishEvent(trx, row.id))) {
          // Housekeeping purged the published row (after 7 days): write it again under the same id.
          const upload = await this.service.view(trx, row);
          await this.outbox.append(trx, uploadEvents.verified, uploadVerifiedPayload(upload), {
            aggregateId: row.id,
            eventId: row.id,
          });
        }
        const count = row.republish_count + 1;
        await this.uploads.markRepublished(trx, row.id, count, now);
        this.republished.inc();
        if (count >= max) {
          this.abandoned.inc();
          this.logger.error(
            { upload_id: row.id, task_id: row.task_id, republished: count },
            'upload.verified republished for the last time; production has still not acknowledged it',
          );
        } else {
          this.logger.warn(
            { upload_id: row.id, task_id: row.task_id, republished: count, max },
            'upload verified but not acknowledged; upload.verified published again',
          );
        }
      }
      return rows.length;
    });
  }
}
