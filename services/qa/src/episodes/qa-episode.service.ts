import {
  type Actor,
  type Page,
  type QaEpisode,
  type QaEpisodeListFilter,
  type QaReview,
  type QaRun,
  type QaStatus,
  type qaEpisodeRpc,
  type RpcRequest,
} from '@ferry/contracts';
import { CONFIG, DomainError, decodeCursor, isIdCursor, newId, notFound, toPage } from '@ferry/platform';
import { Inject, Injectable } from '@nestjs/common';
import { Kysely, type Transaction } from 'kysely';
import type { QaDB } from '../database.js';
import type { QaConfig } from '../manifest.js';
import { QaRunRepository } from '../runs/qa-run.repository.js';
import { QaRunner } from '../runs/qa-runner.js';
import { QaEpisodeRepository, toQaEpisode } from './qa-episode.repository.js';

const DECISION_STATUS: Record<'approve' | 'reject' | 'needs_inspection', QaStatus> = {
  approve: 'inspector_approved',
  reject: 'rejected',
  needs_inspection: 'needs_inspection',
};

/** What people do with QA: the list of what needs attention, an episode's history, manual runs, reviews. */
@Injectable()
export class QaEpisodeService {
  /** Manual runs checking right now on this replica (each streams a whole recording). */
  private manualRuns = 0;

  constructor(
    private readonly db: Kysely<QaDB>,
    private readonly episodes: QaEpisodeRepository,
    private readonly runs: QaRunRepository,
    private readonly runner: QaRunner,
    @Inject(CONFIG) private readonly config: QaConfig,
  ) {}

  async list(actor: Actor, filter: QaEpisodeListFilter): Promise<Page<QaEpisode>> {
    const after = filter.cursor ? decodeCursor(filter.cursor, isIdCursor).id : undefined;
    const rows = await this.episodes.list(this.db, actor.org, filter, after);
    return toPage(rows, filter.limit, toQaEpisode, (r) => ({ id: r.id }));
  }

  async get(actor: Actor, id: string): Promise<QaEpisode> {
    const row = await this.episodes.find(this.db, id, { org: actor.org });
    if (!row) throw notFound('Episode', id);
    return toQaEpisode(row);
  }

  /** Runs and reviews, newest first: the one history of who (or what) decided what, when. */
  async history(actor: Actor, id: string) {
    await this.get(actor, id);
    const [runs, reviews] = await Promise.all([this.runs.runsOf(this.db, id), this.runs.reviewsOf(this.db, id)]);
    const items = [
      ...runs.map((run) => ({ kind: 'run' as const, at: run.finished_at, run })),
      ...reviews.map((review) => ({ kind: 'review' as const, at: review.created_at, review })),
    ].sort((a, b) => (a.at < b.at ? 1 : a.at > b.at ? -1 : 0));
    return { items };
  }

  /**
   * A manual run, now: its results (a protected status is kept); 409 while another check holds the
   * episode; 503 with Retry-After when this replica already runs QA_MANUAL_CONCURRENCY of them.
   */
  async run(actor: Actor, id: string): Promise<QaRun> {
    if (this.manualRuns >= this.config.QA_MANUAL_CONCURRENCY) {
      throw new DomainError('unavailable', 'QA is busy with other manual runs; retry shortly', {
        reason: 'busy',
        retry_after_seconds: 5,
      });
    }
    this.manualRuns++;
    let outcome: Awaited<ReturnType<QaRunner['check']>>;
    try {
      outcome = await this.runner.check({ episodeId: id, org: actor.org, trigger: 'manual', requestedBy: actor.sub });
    } finally {
      this.manualRuns--;
    }
    if (outcome.kind === 'finished') return outcome.run;
    if (outcome.reason === 'not_found') throw notFound('Episode', id);
    throw new DomainError('conflict', `episode ${id} is being checked right now; retry when it finishes`, {
      episode_id: id,
      reason: outcome.reason,
    });
  }

  /** A person's decision, recorded in the history; it sets a status automated runs never override. */
  async review(
    actor: Actor,
    id: string,
    body: RpcRequest<typeof qaEpisodeRpc.review>['review'],
    trx: Transaction<QaDB>,
  ): Promise<QaReview> {
    if (actor.role !== 'admin' && actor.role !== 'operator') {
      throw new DomainError('forbidden', 'only an operator or admin may review episodes');
    }
    const e = await this.episodes.find(trx, id, { org: actor.org, lock: true });
    if (!e) throw notFound('Episode', id);
    const from = e.qa_status;
    const to = DECISION_STATUS[body.decision];
    const now = await this.episodes.now(trx);
    // A review while a check runs wins: the check's result is recorded, the person's status kept.
    const episode = await this.episodes.update(trx, id, {
      qa_status: to,
      status_changed_at: now,
      ...(e.claim_id ? { status_before_claim: to } : {}),
    });
    const review = await this.runs.insertReview(trx, {
      id: newId(),
      episode_id: id,
      organization_id: actor.org,
      decision: body.decision,
      note: body.note ?? null,
      reviewer: actor.sub,
      from_status: from,
      to_status: to,
      created_at: now,
    });
    if (from !== to) await this.runner.statusChanged(trx, episode, from, to, 'review', null, now);
    return review;
  }
}
