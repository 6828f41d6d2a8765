import { hostname } from 'node:os';
import { type ConsumerDefinition, qaConsumers, qaRpc, type RpcDefinition } from '@ferry/contracts';
import { BlobStoreConfig, createBlobStore, newId, ServiceConfig, type ServiceDefinition } from '@ferry/platform';
import { z } from 'zod';
import { QA_MIGRATIONS } from './migrations.js';
import { QaModule } from './qa.module.js';

export const QaConfig = BlobStoreConfig.extend({
  ...ServiceConfig.shape,
  HEALTH_PORT: z.coerce.number().int().min(0).max(65535).default(3103),
  /** Automatic checks this process runs at once (each streams a whole recording). Default 2. */
  QA_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(2),
  /**
   * Manual runs (POST /episodes/{id}/qa/runs) this process checks at once; one more is answered 503
   * with Retry-After rather than queued behind them. Default 2.
   */
  QA_MANUAL_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(2),
  /**
   * How long a check's claim on an episode lasts without renewal; the checker renews it every third of
   * that, so a dead checker's claim expires within one lease and another replica checks the episode.
   * Default 30 s.
   */
  QA_CLAIM_LEASE_MS: z.coerce.number().int().min(500).max(600_000).default(30_000),
  /** Between sweeps releasing expired claims (and re-driving stalled auto QA). Default 10 s. */
  QA_CLAIM_SWEEP_MS: z.coerce.number().int().min(100).default(10_000),
  /**
   * An episode still `pending_qa` (no claim, no finished run) this long after its last status change — and whose last
   * re-drive, if any, a check attempted since (see QA_REDRIVE_UNANSWERED_MS) — is asked for again (`qa.evt.episode.auto_check_requested.v1`): auto QA gave up on it (max_deliver
   * through a long store outage) or never got to it. Default 2 h: above the auto-check consumer's longest retry gap
   * (1 h ± 20 %; every attempt moves the status), so an episode auto QA still retries is not re-driven. Lower it and
   * a long backlog of new episodes gets requested twice (harmless: the claim checks each once, but the work queues
   * twice).
   */
  QA_REDRIVE_AFTER_MS: z.coerce.number().int().min(1_000).default(7_200_000),
  /**
   * A re-drive's request that no check attempted yet (the episode's status has not moved since) is not repeated
   * every QA_REDRIVE_AFTER_MS: it is most likely still queued on `qa__auto-recheck` behind a backlog, and repeating
   * it would only queue the same episodes again and use up their QA_REDRIVE_MAX without a single check. Only after
   * this long is it taken for lost (a purged stream, a request dead-lettered unattempted) and made again. Default
   * 24 h; at least QA_REDRIVE_AFTER_MS.
   */
  QA_REDRIVE_UNANSWERED_MS: z.coerce.number().int().min(1_000).default(86_400_000),
  /**
   * Re-drives per episode at most; the last is logged as an error (the episode stays `pending_qa`, in the default QA
   * list, for a person). Default 10.
   */
  QA_REDRIVE_MAX: z.coerce.number().int().min(0).max(1_000).default(10),
  /**
   * How long an automatic check (auto QA, its rechecks and re-drives) or a manual run may take, from its claim to the
   * end of its read, before it is abandoned: the read aborted, the episode's claim released, nothing recorded. That
   * is a storage error, not a QA verdict: auto QA retries it on its schedule, a manual run answers 502
   * `storage_error` (`details.reason: "timed_out"`). So a read that trickles for ever cannot hold a consumer slot, a
   * manual slot or the episode. Default 4 minutes (a 10 GB recording at a slow 50 MB/s); keep it above the longest
   * honest check, and below the gateway's 5-minute wait for a manual run, or a manual caller gets the gateway's 504
   * while the check goes on. Bulk items have their own limit, BULK_ITEM_TIMEOUT_MS.
   */
  QA_CHECK_TIMEOUT_MS: z.coerce.number().int().min(500).max(3_600_000).default(240_000),
  /** Bulk-run items this process checks at once. Default 2. */
  BULK_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(2),
  /**
   * How long one bulk item's check may take before it is abandoned: its read is aborted, its episode claim released,
   * and it is counted `processing_failed` with the reason, so a hung read can neither hold a run open nor keep a
   * cancel waiting. Default 2 minutes (Keystone's per-episode timeout); keep it above the longest honest check.
   */
  BULK_ITEM_TIMEOUT_MS: z.coerce.number().int().min(500).max(3_600_000).default(120_000),
  /** How often workers heart-beat the runs they work on and look for work. Default 1 s. */
  BULK_POLL_MS: z.coerce.number().int().min(50).max(60_000).default(1_000),
  /**
   * A queued or running run nobody has heart-beaten this long (every replica working on it died) is `interrupted`:
   * by the startup sweep, or by the periodic sweep of a replica restarted within the window, which never adopts it.
   * Default 60 s (twice the default lease); keep it well above BULK_POLL_MS (a live replica beats its runs once per poll: at or below it a live
   * run looks abandoned between two beats) and the claim lease. At or below either, the service refuses to start.
   */
  BULK_STALE_MS: z.coerce.number().int().min(200).default(60_000),
  /**
   * A run's next progress event waits this long after the last one was seen published (DESIGN: ≤ 2 per second per
   * run, as subscribers receive them). Default and minimum 500: less would break that contract.
   */
  BULK_PROGRESS_INTERVAL_MS: z.coerce.number().int().min(500).default(500),
  /** This replica's name in claims and heart-beats. Default: host name and a random suffix. */
  QA_WORKER_ID: z
    .string()
    .min(1)
    .max(200)
    .default(() => `${hostname()}-${newId().slice(-12)}`),
}).superRefine((c, ctx) => {
  // Settings that only make sense relative to each other: refused at start, naming both, rather than misbehaving.
  if (c.BULK_STALE_MS <= c.BULK_POLL_MS || c.BULK_STALE_MS <= c.QA_CLAIM_LEASE_MS) {
    ctx.addIssue({
      code: 'custom',
      path: ['BULK_STALE_MS'],
      message:
        `must be above BULK_POLL_MS (${c.BULK_POLL_MS}) and QA_CLAIM_LEASE_MS (${c.QA_CLAIM_LEASE_MS}) — well above ` +
        'both: a bulk run nobody heart-beats for BULK_STALE_MS is interrupted',
    });
  }
  if (c.QA_REDRIVE_UNANSWERED_MS < c.QA_REDRIVE_AFTER_MS) {
    ctx.addIssue({
      code: 'custom',
      path: ['QA_REDRIVE_UNANSWERED_MS'],
      message: `must be at least QA_REDRIVE_AFTER_MS (${c.QA_REDRIVE_AFTER_MS}): an unanswered re-drive is repeated no sooner than an answered one`,
    });
  }
});
export type QaConfig = z.infer<typeof QaConfig>;

function leaves<T>(tree: object, isLeaf: (v: unknown) => boolean): T[] {
  return Object.values(tree).flatMap((v) =>
    isLeaf(v) ? [v as T] : typeof v === 'object' && v ? leaves<T>(v, isLeaf) : [],
  );
}

export const qaService: ServiceDefinition<QaConfig> = {
  name: 'qa',
  config: QaConfig,
  module: QaModule,
  migrations: QA_MIGRATIONS,
  rpcs: leaves<RpcDefinition>(qaRpc, (v) => !!v && typeof v === 'object' && 'subject' in v).filter(
    (r) => r.subject !== 'qa.rpc.health.ping',
  ),
  consumers: Object.values(qaConsumers) as ConsumerDefinition[],
  streams: ['QA', 'PRODUCTION', 'TRANSFER', 'DLQ'],
  blobStore: (config) => createBlobStore(config),
  consumerConcurrency: (config) => ({ [qaConsumers.autoCheck.durable]: config.QA_CONCURRENCY }),
};
