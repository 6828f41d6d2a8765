import { HEADERS } from '@ferry/contracts';
import type { JetStreamClient } from '@nats-io/jetstream';
import { type Kysely, sql } from 'kysely';
import type { MessagingTables } from '../db/messaging-tables.js';
import { PostgresClient } from '../db/postgres-client.js';
import { faultPoint } from '../faults/faults.js';
import { type DependencyMonitor, isPostgresConnectionError } from '../health/dependency-monitor.js';
import type { Logger } from '../logging/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { toNatsHeaders } from './envelope.js';

export interface OutboxRelayOptions {
  db: Kysely<any>;
  /** Connection string for the dedicated LISTEN connection (not taken from the pool). */
  databaseUrl: string;
  schema: string;
  js: JetStreamClient;
  logger: Logger;
  metrics?: Metrics;
  /** Rows claimed per transaction. Default 100: larger batches republish more after a crash. */
  batchSize?: number;
  /** Fallback poll when no NOTIFY arrives (lost connection, missed wake-up). Default 1000 ms. */
  pollIntervalMs?: number;
  /** PubAck wait per message. Default 5000 ms. */
  publishTimeoutMs?: number;
  /** Ceiling of the per-row retry delay after failed publishes. Default 60 s. */
  maxRetryDelayMs?: number;
  /** Told about Postgres and NATS outages: the relay then waits quietly instead of logging every pass. */
  monitor?: DependencyMonitor;
}

export interface RelayBatchResult {
  claimed: number;
  published: number;
  /** PubAcks that said `duplicate`: a previous relay published the row but died before marking it. */
  duplicates: number;
  failed: number;
}

interface ClaimedRow {
  id: string;
  subject: string;
  event_type: string;
  payload: unknown;
  created_at: Date;
  correlation_id: string | null;
  causation_id: string | null;
  attempts: number;
}

/** The envelope of an outbox row (DESIGN §3); Nats-Msg-Id is set from the id by the publish itself. */
export function envelopeOf(
  row: Omit<ClaimedRow, 'payload' | 'attempts' | 'subject'>,
): Record<string, string | undefined> {
  return {
    [HEADERS.eventId]: row.id,
    [HEADERS.eventType]: row.event_type,
    [HEADERS.schemaVersion]: /\.v(\d+)$/.exec(row.event_type)?.[1],
    [HEADERS.occurredAt]: row.created_at.toISOString(),
    [HEADERS.correlationId]: row.correlation_id ?? undefined,
    [HEADERS.causationId]: row.causation_id ?? undefined,
  };
}

/**
 * Publishes outbox rows to JetStream. Any number of relays may run (one per service replica): each
 * transaction claims rows with FOR UPDATE SKIP LOCKED, publishes them with Nats-Msg-Id = row id,
 * and marks them published before committing. A relay that dies after publishing but before
 * committing leaves the rows unclaimed; the next relay republishes them and JetStream answers
 * `duplicate` (inside the 10-minute window), which counts as success. Order is kept within one
 * batch (pipelined publishes on one connection), not across relays: consumers must not rely on
 * cross-event order.
 */
export class OutboxRelay {
  private readonly db: Kysely<MessagingTables>;
  private readonly batchSize: number;
  private readonly pollIntervalMs: number;
  private readonly publishTimeoutMs: number;
  private readonly maxRetryDelayMs: number;
  private running = false;
  private loop?: Promise<void>;
  private wake?: () => void;
  /** A NOTIFY arrived since the current pass began (its row may have committed after the pass read). */
  private notified = false;
  private listener?: PostgresClient;
  private listenerRetry?: NodeJS.Timeout;

  constructor(private readonly options: OutboxRelayOptions) {
    this.db = options.db as Kysely<MessagingTables>;
    this.batchSize = options.batchSize ?? 100;
    this.pollIntervalMs = options.pollIntervalMs ?? 1_000;
    this.publishTimeoutMs = options.publishTimeoutMs ?? 5_000;
    this.maxRetryDelayMs = options.maxRetryDelayMs ?? 60_000;
  }

  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    await this.listen().catch((err) =>
      this.options.logger.warn({ err }, 'outbox LISTEN failed; polling until it recovers'),
    );
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.wake?.();
    clearTimeout(this.listenerRetry);
    await this.loop;
    await this.listener?.end().catch(() => undefined);
    this.listener = undefined;
  }

  private async listen(): Promise<void> {
    const client = new PostgresClient({
      connectionString: this.options.databaseUrl,
      application_name: 'ferry-outbox-listen',
    });
    const retry = () => {
      if (!this.running || this.listener !== client) return;
      this.listener = undefined;
      client.end().catch(() => undefined);
      this.listenerRetry = setTimeout(() => {
        this.listen().catch((err) => {
          if (this.options.monitor && isPostgresConnectionError(err)) this.options.monitor.down('postgres', err);
          else this.options.logger.warn({ err }, 'outbox LISTEN reconnect failed');
          this.listenerRetry = setTimeout(retry, 5_000);
        });
      }, 1_000);
    };
    client.on('notification', () => this.poke());
    client.on('error', (err) => {
      if (this.options.monitor && isPostgresConnectionError(err)) this.options.monitor.down('postgres', err);
      else this.options.logger.warn({ err }, 'outbox LISTEN connection lost');
      retry();
    });
    client.on('end', retry);
    await client.connect();
    this.listener = client;
    await client.query(`listen "${this.options.schema}.outbox"`);
    // Rows committed while we were not listening are picked up by the next pass.
    this.poke();
  }

  private poke(): void {
    this.notified = true;
    this.wake?.();
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (this.running) {
      let result: RelayBatchResult | undefined;
      this.notified = false;
      try {
        result = await this.relayBatch();
        failures = 0;
      } catch (err) {
        failures++;
        if (this.options.monitor && isPostgresConnectionError(err)) this.options.monitor.down('postgres', err);
        else this.options.logger.error({ err }, 'outbox relay pass failed');
      }
      if (!this.running) break;
      if (result && result.claimed === this.batchSize && result.failed === 0) continue;
      // A commit during the pass notified nobody (there was no waiter): without this its row would wait
      // for the poll, a full pollIntervalMs added to an event's latency whenever commits overlap a pass.
      if (this.notified && failures === 0) continue;
      const wait = failures > 0 ? Math.min(this.pollIntervalMs * 2 ** failures, 30_000) : this.pollIntervalMs;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, wait);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  /** Claims, publishes and marks one batch. Exposed for tests and for draining at shutdown. */
  async relayBatch(): Promise<RelayBatchResult> {
    return this.db.transaction().execute(async (trx) => {
      const rows = (await trx
        .selectFrom('outbox')
        .select(['id', 'subject', 'event_type', 'payload', 'created_at', 'correlation_id', 'causation_id', 'attempts'])
        .where('published_at', 'is', null)
        .where('next_attempt_at', '<=', sql<Date>`now()`)
        .orderBy('next_attempt_at')
        .orderBy('created_at')
        .limit(this.batchSize)
        .forUpdate()
        .skipLocked()
        .execute()) as ClaimedRow[];
      const result: RelayBatchResult = { claimed: rows.length, published: 0, duplicates: 0, failed: 0 };
      if (rows.length === 0) return result;
      // While NATS is away each publish would wait out its timeout and count a failed attempt: wait instead.
      if (this.options.monitor?.isDown('nats')) {
        result.failed = rows.length;
        return result;
      }

      // Pipelined on one connection: the server stores them in send order.
      const acks = await Promise.allSettled(
        rows.map((row) =>
          this.options.js.publish(row.subject, JSON.stringify(row.payload), {
            msgID: row.id,
            headers: toNatsHeaders(envelopeOf(row)),
            timeout: this.publishTimeoutMs,
          }),
        ),
      );
      faultPoint('relay.after_publish');

      const published: { id: string; seq: number }[] = [];
      for (const [i, ack] of acks.entries()) {
        const row = rows[i]!;
        if (ack.status === 'fulfilled') {
          published.push({ id: row.id, seq: ack.value.seq });
          if (ack.value.duplicate) result.duplicates++;
        } else {
          result.failed++;
          const attempts = row.attempts + 1;
          const delayMs = Math.min(this.maxRetryDelayMs, 500 * 2 ** Math.min(attempts, 16));
          if (!this.options.monitor?.isDown('nats')) {
            this.options.logger.warn(
              { err: ack.reason, event_id: row.id, subject: row.subject, attempts },
              'outbox publish failed',
            );
          }
          await trx
            .updateTable('outbox')
            .set({
              attempts,
              last_error: String((ack.reason as Error)?.message ?? ack.reason).slice(0, 1000),
              next_attempt_at: sql<Date>`now() + ${`${delayMs} milliseconds`}::interval`,
            })
            .where('id', '=', row.id)
            .execute();
        }
      }
      if (published.length > 0) {
        await sql`
          update outbox as o set published_at = now(), stream_seq = v.seq
          from (select unnest(${published.map((p) => p.id)}::uuid[]) as id,
                       unnest(${published.map((p) => p.seq)}::bigint[]) as seq) as v
          where o.id = v.id`.execute(trx);
      }
      result.published = published.length;
      this.options.metrics?.outboxPublished.inc(result.published);
      this.options.metrics?.outboxDuplicates.inc(result.duplicates);
      this.options.metrics?.outboxFailures.inc(result.failed);
      return result;
    });
  }
}
