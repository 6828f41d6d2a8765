import { addAbortSignal } from 'node:stream';
import {
  type AutoCheckReason,
  isProtectedQaStatus,
  type QaProfile,
  type QaRun,
  type QaStatus,
  type QaTrigger,
  qaEpisodeEvents,
  type RecordingMetadata,
} from '@ferry/contracts';
import {
  BLOB_STORE,
  BlobStorageError,
  type BlobStore,
  CONFIG,
  DomainError,
  faultPoint,
  inTransaction,
  LOGGER,
  type Logger,
  METRICS,
  type Metrics,
  newId,
  Outbox,
} from '@ferry/platform';
import { Inject, Injectable } from '@nestjs/common';
import { Kysely, type Transaction } from 'kysely';
import { checkId, loadDecompressors, runQaSuite } from '../checks/index.js';
import type { QaDB } from '../database.js';
import { QaEpisodeRepository, type QaEpisodeRow } from '../episodes/qa-episode.repository.js';
import type { QaConfig } from '../manifest.js';
import { ProfileRepository } from '../profiles/profile.repository.js';
import { QaRunRepository } from './qa-run.repository.js';

export interface CheckRequest {
  episodeId: string;
  /** Only episodes of this organization (HTTP callers); undefined for events, which carry their own. */
  org?: string;
  trigger: QaTrigger;
  requestedBy: string;
  bulkRunId?: string;
  /**
   * Auto QA only: also check an episode automated QA already decided (approved, failed) — it was checked without
   * something it should have had (its robot type). Never one a person decided. Default false: pending_qa only.
   */
  recheck?: boolean;
  /**
   * Auto QA asked for again (`auto_check_requested`) at this moment: an episode whose last run started at or after it
   * was checked since the request — this delivery is a repeat (a lost ack, a crash before the ack, a DLQ replay) — and
   * is left alone (`checked_since`). `qa__auto-recheck` has no inbox row, so this is what makes a repeat harmless
   * for a `robot_type_known` recheck, which may check an approved or failed episode.
   */
  requestedAt?: Date;
  /**
   * Called inside the transaction that records a finished run (a bulk item counts it there), so the
   * run and what depends on it commit together or not at all.
   */
  onRecorded?: (trx: Transaction<QaDB>, run: QaRun) => Promise<void>;
}

type Suite = Awaited<ReturnType<typeof runQaSuite>>;

export type SkipReason = 'not_found' | 'already_running' | 'not_pending' | 'protected' | 'claim_lost' | 'checked_since';

export type CheckOutcome = { kind: 'finished'; run: QaRun; status: QaStatus } | { kind: 'skipped'; reason: SkipReason };

interface Claim {
  claimId: string;
  /** The replica whose lapsed claim this one took over (it died or stalled), if any. */
  tookOverFrom?: string;
  episode: QaEpisodeRow;
  /** The status before this check (what a release goes back to, and what a protected run keeps). */
  before: QaStatus;
  startedAt: Date;
}

/** `work`, or the signal's reason as soon as it aborts: a read that never answers cannot hold the caller. */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/**
 * `ferry_qa_claims_expired_total`: claims whose lease lapsed, whether the sweep released them or another check
 * took them over (registered once per registry; the runner and the sweeper share it).
 */
export function claimsExpiredCounter(metrics: Metrics): ReturnType<Metrics['counter']> {
  return metrics.counter(
    'ferry_qa_claims_expired_total',
    'QA claims whose lease lapsed (a checker died or stalled): released by the sweep or taken over by another check.',
  );
}

/**
 * Runs the QA suite over one episode, for every trigger (auto, manual, bulk), exactly as DESIGN §7 asks:
 * a per-episode claim with a lease (`qa_running` + expiry, renewed while the check streams the
 * recording), so a replica killed mid-check lets its claim lapse and another checks the episode; the
 * results persisted only by the holder of the claim, in one transaction with the status change and its
 * events (exactly one finished run); human statuses never changed; a storage error — or a read past the check's time
 * limit — releases the claim, persists nothing and surfaces as `storage_error` (retried later, 502 for a manual run).
 */
@Injectable()
export class QaRunner {
  private readonly checksRun;
  private readonly checkFailures;
  private readonly duration;
  private readonly bytesRead;
  private readonly claimsExpired;

  constructor(
    private readonly db: Kysely<QaDB>,
    private readonly episodes: QaEpisodeRepository,
    private readonly runs: QaRunRepository,
    private readonly profiles: ProfileRepository,
    private readonly outbox: Outbox,
    @Inject(BLOB_STORE) private readonly blob: BlobStore,
    @Inject(CONFIG) private readonly config: QaConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(METRICS) metrics: Metrics,
  ) {
    this.checksRun = metrics.counter('ferry_qa_runs_total', 'QA suite runs finished, by trigger and outcome.', [
      'trigger',
      'outcome',
    ]);
    this.checkFailures = metrics.counter('ferry_qa_check_failures_total', 'Failed check results, by check.', ['check']);
    this.duration = metrics.histogram('ferry_qa_run_duration_seconds', 'Time to run the suite over one episode.', {
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
    });
    this.bytesRead = metrics.counter('ferry_qa_bytes_read_total', 'Recording bytes read by QA (rate: bytes/s).');
    this.claimsExpired = claimsExpiredCounter(metrics);
  }

  async check(req: CheckRequest): Promise<CheckOutcome> {
    // Every check has a time limit, whatever its trigger, from before its claim to the end of its read: a read that
    // trickles for ever (storage that stopped answering) would otherwise hold a consumer slot, a manual caller or a
    // bulk item — and the episode's claim, renewed all along — for good. Recording the result is not limited: once
    // the read is done, the run is recorded or the episode given back.
    const limit = this.timeLimitOf(req.trigger);
    const abort = new AbortController();
    let timedOut: DomainError | undefined;
    const timer = setTimeout(() => {
      timedOut = new DomainError(
        'storage_error',
        `no result within ${limit.ms} ms (${limit.setting}): the check was abandoned; nothing was recorded`,
        { episode_id: req.episodeId, reason: 'timed_out', limit_ms: limit.ms, retry_after_seconds: 5 },
      );
      abort.abort(timedOut);
    }, limit.ms);
    timer.unref();
    let claim: Claim;
    let suite: Suite;
    try {
      const claimed = await this.claim(req);
      if ('skipped' in claimed) return { kind: 'skipped', reason: claimed.skipped };
      claim = claimed;
      const read = await this.read(req, claim, abort, () => timedOut);
      if (read === 'claim_lost') return { kind: 'skipped', reason: 'claim_lost' };
      suite = read;
    } finally {
      clearTimeout(timer);
    }
    let outcome: CheckOutcome;
    try {
      outcome = await this.persist(req, claim, suite);
    } catch (err) {
      // Nothing was recorded (a database error): give the episode back rather than hold it for a lease.
      await this.release(claim, req.trigger).catch(() => undefined);
      throw err;
    }
    faultPoint('qa.after_record'); // tests: a replica dies right after the run (and its bulk item) committed
    if (outcome.kind === 'finished') this.finished(req, outcome);
    return outcome;
  }

  /** BULK_ITEM_TIMEOUT_MS for a bulk item, QA_CHECK_TIMEOUT_MS for every other check (auto, recheck, manual). */
  private timeLimitOf(trigger: QaTrigger): { ms: number; setting: string } {
    return trigger === 'bulk'
      ? { ms: this.config.BULK_ITEM_TIMEOUT_MS, setting: 'BULK_ITEM_TIMEOUT_MS' }
      : { ms: this.config.QA_CHECK_TIMEOUT_MS, setting: 'QA_CHECK_TIMEOUT_MS' };
  }

  /**
   * Runs the suite under the claim, renewing it meanwhile, until the suite ends or `abort` fires (the time limit, or
   * the claim lost to another checker). Stopped short, it records nothing and gives the claim back (unless another
   * checker took it): a time-out or a storage error is thrown as `storage_error` (auto QA retries it, a manual run
   * answers 502), a lost claim answers `claim_lost`.
   */
  private async read(
    req: CheckRequest,
    claim: Claim,
    abort: AbortController,
    timedOut: () => DomainError | undefined,
  ): Promise<Suite | 'claim_lost'> {
    if (claim.tookOverFrom !== undefined) {
      // Counted once the takeover committed; the sweep counts the lapsed claims it releases itself.
      this.claimsExpired.inc();
      this.logger.warn(
        { episode_id: claim.episode.id, claimed_by: claim.tookOverFrom, trigger: req.trigger },
        'QA claim lapsed (checker gone or stalled); taken over',
      );
    }
    const lost = new Error('the claim lapsed and was taken by another checker');
    const lease = this.config.QA_CLAIM_LEASE_MS;
    let renewing: Promise<unknown> = Promise.resolve();
    const renew = setInterval(
      () => {
        renewing = this.episodes.renewClaim(this.db, claim.episode.id, claim.claimId, lease).then(
          (ours) => {
            if (!ours) abort.abort(lost);
          },
          () => undefined, // a database blip: the next renewal (or the lease) decides
        );
      },
      Math.max(100, Math.floor(lease / 3)),
    );
    renew.unref();
    let failure: { err: unknown } | undefined;
    let suite: Suite | undefined;
    try {
      // The time may have run out while the claim was taken: then this rejects at once.
      suite = await untilAborted(this.runSuite(claim, abort.signal), abort.signal);
    } catch (err) {
      failure = { err };
    } finally {
      clearInterval(renew);
      await renewing;
    }
    if (!failure) return suite!;
    const { err } = failure;
    if (abort.signal.reason === lost) return 'claim_lost';
    await this.release(claim, req.trigger);
    // Only the limit's own error is a time-out: a check that failed otherwise as the time ran out says why it failed.
    if (err !== undefined && err === timedOut()) {
      this.logger.warn(
        { episode_id: claim.episode.id, trigger: req.trigger, bulk_run_id: req.bulkRunId, err: (err as Error).message },
        'QA check over its time limit; claim released, nothing recorded',
      );
      throw err;
    }
    if (err instanceof BlobStorageError) {
      this.logger.warn({ episode_id: claim.episode.id, err: err.message }, 'recording unreadable; QA claim released');
      throw new DomainError('storage_error', 'the recording could not be read from storage; nothing was recorded', {
        episode_id: claim.episode.id,
        retry_after_seconds: 5,
      });
    }
    throw err;
  }

  private async runSuite(claim: Claim, signal: AbortSignal) {
    await loadDecompressors();
    const e = claim.episode;
    const profile = await this.profiles.bestFor(this.db, e.organization_id, e.robot_type, e.scene_id);
    let faulted = false;
    return runQaSuite({
      open: async () =>
        (await this.blob.stat(e.mcap.object_key))
          ? addAbortSignal(signal, await this.blob.read(e.mcap.object_key)) // an abort closes the read itself
          : null,
      expected: { size_bytes: e.mcap.size_bytes, sha256: e.mcap.sha256 },
      recording: (e.recording as RecordingMetadata | null) ?? null,
      profile: (profile?.rules as QaProfile | undefined) ?? null,
      signal,
      scan: { progressIntervalMs: 200 },
      onProgress: ({ bytesRead }) => {
        this.bytesRead.inc(bytesRead - (this.progressSeen.get(claim.claimId) ?? 0));
        this.progressSeen.set(claim.claimId, bytesRead);
        if (!faulted && bytesRead > 0) {
          faulted = true;
          faultPoint('qa.mid_check'); // tests: a replica dies in the middle of a check
        }
      },
    }).finally(() => this.progressSeen.delete(claim.claimId));
  }

  private readonly progressSeen = new Map<string, number>();

  /** Takes the episode for this check, or says why not. */
  private async claim(req: CheckRequest): Promise<Claim | { skipped: SkipReason }> {
    return inTransaction(this.db, async (trx) => {
      const e = await this.episodes.find(trx, req.episodeId, { org: req.org, lock: true });
      if (!e) return { skipped: 'not_found' as const };
      const now = await this.episodes.now(trx);
      const live = e.claim_id !== null && e.claim_expires_at !== null && e.claim_expires_at > now;
      if (live) return { skipped: 'already_running' as const };
      // A lapsed claim (a dead checker) counts as released: its status is the one before it.
      const before = e.qa_status === 'qa_running' ? (e.status_before_claim ?? 'pending_qa') : e.qa_status;
      const autoMay = before === 'pending_qa' || (req.recheck === true && !isProtectedQaStatus(before));
      if (req.trigger === 'auto' && !autoMay) return { skipped: 'not_pending' as const };
      if (req.requestedAt && e.last_run_id) {
        // Runs never overlap on an episode (the claim), so the last run is the newest one.
        const lastStarted = await this.runs.startedAt(trx, e.last_run_id);
        if (lastStarted && lastStarted >= req.requestedAt) return { skipped: 'checked_since' as const };
      }
      if (req.trigger === 'bulk' && isProtectedQaStatus(before)) return { skipped: 'protected' as const };
      const claimId = newId();
      const keep = isProtectedQaStatus(before);
      const episode = await this.episodes.update(trx, e.id, {
        claim_id: claimId,
        claimed_by: this.config.QA_WORKER_ID,
        claim_expires_at: new Date(now.getTime() + this.config.QA_CLAIM_LEASE_MS),
        status_before_claim: before,
        ...(keep || e.qa_status === 'qa_running' ? {} : { qa_status: 'qa_running', status_changed_at: now }),
      });
      if (!keep && e.qa_status !== 'qa_running') {
        await this.statusChanged(trx, episode, before, 'qa_running', req.trigger, null, now);
      }
      const lapsed = e.claim_id !== null ? { tookOverFrom: e.claimed_by ?? 'unknown' } : {};
      return { claimId, episode, before, startedAt: now, ...lapsed };
    });
  }

  /** Gives the episode back unchecked (storage error): its status returns to what it was. */
  private async release(claim: Claim, trigger: QaTrigger): Promise<void> {
    await inTransaction(this.db, async (trx) => {
      const e = await this.episodes.find(trx, claim.episode.id, { lock: true });
      if (!e || e.claim_id !== claim.claimId) return;
      await this.releaseLocked(trx, e, trigger);
    });
  }

  /** Clears a claim the caller has locked; shared with the sweeper of lapsed claims. */
  async releaseLocked(trx: Transaction<QaDB>, e: QaEpisodeRow, cause: 'auto' | 'manual' | 'bulk' | 'claim_released') {
    const back = e.status_before_claim ?? 'pending_qa';
    const now = await this.episodes.now(trx);
    const running = e.qa_status === 'qa_running';
    const episode = await this.episodes.update(trx, e.id, {
      claim_id: null,
      claimed_by: null,
      claim_expires_at: null,
      status_before_claim: null,
      ...(running ? { qa_status: back, status_changed_at: now } : {}),
    });
    if (running) await this.statusChanged(trx, episode, 'qa_running', back, cause, null, now);
  }

  /** Records the run, its results and the new status — only while the claim is still ours. */
  private async persist(req: CheckRequest, claim: Claim, suite: Suite): Promise<CheckOutcome> {
    return inTransaction(this.db, async (trx) => {
      const e = await this.episodes.find(trx, claim.episode.id, { lock: true });
      if (!e || e.claim_id !== claim.claimId) return { kind: 'skipped', reason: 'claim_lost' } as const;
      // The status as it stands now: a person may have reviewed the episode while the check ran, and
      // a status a person set is kept (the run is still recorded).
      const current = e.qa_status === 'qa_running' ? (e.status_before_claim ?? claim.before) : e.qa_status;
      const keep = isProtectedQaStatus(current);
      const status: QaStatus = keep ? current : suite.passed ? 'approved' : 'failed';
      const failed = suite.results.filter((r) => r.status === 'failed').map((r) => checkId(r));
      const now = await this.episodes.now(trx);
      const run: QaRun = {
        id: newId(),
        episode_id: e.id,
        organization_id: e.organization_id,
        suite_version: suite.suite_version,
        trigger: req.trigger,
        bulk_run_id: req.bulkRunId ?? null,
        requested_by: req.requestedBy,
        passed: suite.passed,
        score: suite.score,
        status_after: status,
        bytes_read: suite.metrics.bytes,
        duration_ms: suite.metrics.duration_ms,
        started_at: claim.startedAt.toISOString(),
        finished_at: now.toISOString(),
        results: suite.results,
      };
      await this.runs.insertRun(
        trx,
        {
          id: run.id,
          episode_id: run.episode_id,
          organization_id: run.organization_id,
          suite_version: run.suite_version,
          trigger: run.trigger,
          bulk_run_id: run.bulk_run_id,
          requested_by: run.requested_by,
          passed: run.passed,
          score: run.score,
          status_after: run.status_after,
          bytes_read: run.bytes_read,
          duration_ms: run.duration_ms,
          started_at: claim.startedAt,
          finished_at: now,
        },
        suite.results,
      );
      const fromStatus = e.qa_status;
      const episode = await this.episodes.update(trx, e.id, {
        claim_id: null,
        claimed_by: null,
        claim_expires_at: null,
        status_before_claim: null,
        qa_score: suite.score,
        failed_checks: failed,
        last_run_id: run.id,
        ...(fromStatus !== status ? { qa_status: status, status_changed_at: now } : {}),
      });
      if (fromStatus !== status) await this.statusChanged(trx, episode, fromStatus, status, req.trigger, run.id, now);
      await this.outbox.append(trx, qaEpisodeEvents.checked, { run, qa_status: status }, { aggregateId: e.id });
      await req.onRecorded?.(trx, run);
      return { kind: 'finished', run, status } as const;
    });
  }

  /** Counts a run once it committed: a run rolled back (a database error, a bulk item refused) is not one. */
  private finished(req: CheckRequest, outcome: CheckOutcome & { kind: 'finished' }): void {
    const { run, status } = outcome;
    const failed = run.results.filter((r) => r.status === 'failed').map((r) => checkId(r));
    this.checksRun.inc({ trigger: req.trigger, outcome: run.passed ? 'passed' : 'failed' });
    for (const id of failed) this.checkFailures.inc({ check: id });
    this.duration.observe(run.duration_ms / 1000);
    this.logger.info(
      { episode_id: run.episode_id, run_id: run.id, trigger: req.trigger, passed: run.passed, status, failed },
      'qa run finished',
    );
  }

  /**
   * Asks for auto QA over `e` again, in `trx` (`qa__auto-recheck` runs it): the claim sweeper's re-drive of a stalled
   * episode, and the device projection's recheck of one checked before its robot type was known.
   */
  async requestAutoCheck(
    trx: Transaction<QaDB>,
    e: Pick<QaEpisodeRow, 'id' | 'organization_id'>,
    reason: AutoCheckReason,
    redrive: number,
    at: Date,
  ): Promise<void> {
    await this.outbox.append(
      trx,
      qaEpisodeEvents.autoCheckRequested,
      { episode_id: e.id, organization_id: e.organization_id, reason, redrive, requested_at: at.toISOString() },
      { aggregateId: e.id },
    );
  }

  /** The status_changed event of a change the caller made in `trx` (reviews use it too). */
  async statusChanged(
    trx: Transaction<QaDB>,
    e: QaEpisodeRow,
    from: QaStatus,
    to: QaStatus,
    cause: 'auto' | 'manual' | 'bulk' | 'review' | 'claim_released',
    runId: string | null,
    at: Date,
  ): Promise<void> {
    await this.outbox.append(
      trx,
      qaEpisodeEvents.statusChanged,
      {
        episode_id: e.id,
        organization_id: e.organization_id,
        from,
        to,
        cause,
        run_id: runId,
        changed_at: at.toISOString(),
      },
      { aggregateId: e.id },
    );
  }
}
