import {
  type RpcCallContext,
  type RpcDefinition,
  type RpcErrorBody,
  type RpcReplyEnvelope,
  RpcRequestEnvelope,
} from '@ferry/contracts';
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import { type Kysely, sql, type Transaction } from 'kysely';
import type { z } from 'zod';
import { type BlobError, isBlobError } from '../blob/blob-errors.js';
import type { MessagingTables } from '../db/messaging-tables.js';
import { inTransaction } from '../db/transaction.js';
import { DomainError, isDomainError } from '../errors/domain-error.js';
import { faultPoint } from '../faults/faults.js';
import {
  type DependencyMonitor,
  databaseBusy,
  isPoolSaturated,
  isPostgresConnectionError,
  unavailable,
} from '../health/dependency-monitor.js';
import { runWithTrace } from '../logging/context.js';
import type { Logger } from '../logging/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import type { Namespace } from '../namespace/namespace.js';
import { chunkSize, fetchPayload, isChunked, servePayload } from './rpc-chunks.js';

/** What an RPC handler gets besides the request. */
export interface RpcHandlerContext<DB = any> {
  readonly call: RpcCallContext;
  /** Commands only: the transaction that also records the command id. Queries use the pool. */
  readonly trx: Transaction<DB>;
}

export type RpcHandler = (data: any, ctx: RpcHandlerContext) => Promise<unknown>;

export interface RpcServerOptions {
  nc: NatsConnection;
  ns: Namespace;
  /** Queue group: replicas of one service share the requests. */
  service: string;
  db: Kysely<any>;
  logger: Logger;
  metrics?: Metrics;
  /** Requests handled at once per process. Default 64. */
  maxInFlight?: number;
  /** Told about Postgres outages; a connection error is answered `unavailable`, not `internal`. */
  monitor?: DependencyMonitor;
}

export function zodIssues(error: z.ZodError): { path: string; message: string }[] {
  return error.issues.map((i) => ({ path: i.path.map(String).join('.') || '(root)', message: i.message }));
}

/**
 * Request/reply over core NATS. Every request is parsed against its contract before a handler sees
 * it; every reply is `{ok, data}` or `{ok:false, error:{code,message,details}}`. A command runs in one
 * transaction; when it carries a command id (from an Idempotency-Key) the id is recorded in the command
 * log of that transaction, and a repeat returns the recorded reply instead of running again.
 * Errors that are not DomainErrors are answered without their message: an object store failure as
 * `storage_error`, a missing stored object as `not_found`, a lost Postgres connection as `unavailable`,
 * anything else (logged) as `internal`.
 */
export class RpcServer {
  private readonly handlers = new Map<string, { def: RpcDefinition; handler: RpcHandler }>();
  private readonly subs: Subscription[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  private readonly maxInFlight: number;

  constructor(private readonly options: RpcServerOptions) {
    this.maxInFlight = options.maxInFlight ?? 64;
  }

  register(def: RpcDefinition, handler: RpcHandler): void {
    if (this.handlers.has(def.subject)) throw new Error(`duplicate RPC handler for ${def.subject}`);
    this.handlers.set(def.subject, { def, handler });
  }

  get subjects(): string[] {
    return [...this.handlers.keys()];
  }

  start(): void {
    for (const [subject, entry] of this.handlers) {
      const sub = this.options.nc.subscribe(this.options.ns.subject(subject), { queue: this.options.service });
      this.subs.push(sub);
      void (async () => {
        for await (const msg of sub) {
          while (this.inFlight.size >= this.maxInFlight) await Promise.race(this.inFlight);
          const p = this.serve(entry.def, entry.handler, msg).finally(() => this.inFlight.delete(p));
          this.inFlight.add(p);
        }
      })();
    }
  }

  /** Stops taking requests, answers the ones already received, then returns. */
  async stop(): Promise<void> {
    await Promise.allSettled(this.subs.map((s) => s.drain()));
    await Promise.allSettled([...this.inFlight]);
  }

  private async serve(def: RpcDefinition, handler: RpcHandler, msg: Msg): Promise<void> {
    const started = performance.now();
    let reply: RpcReplyEnvelope;
    let requestId: string | undefined;
    try {
      const envelope = RpcRequestEnvelope.safeParse(await this.readRequest(msg));
      if (!envelope.success) {
        throw new DomainError('validation_failed', 'malformed RPC envelope', { errors: zodIssues(envelope.error) });
      }
      requestId = envelope.data.ctx.request_id;
      const data = def.request.safeParse(envelope.data.data);
      if (!data.success) {
        throw new DomainError('validation_failed', `request does not match ${def.subject}`, {
          errors: zodIssues(data.error),
        });
      }
      const call = envelope.data.ctx;
      const result = await runWithTrace({ requestId, causationId: call.command_id }, () =>
        def.kind === 'command'
          ? this.runCommand(def, handler, data.data, call)
          : handler(data.data, { call } as RpcHandlerContext),
      );
      reply = { ok: true, data: result };
    } catch (err) {
      reply = { ok: false, error: this.toErrorBody(err, def, requestId) };
    }
    const outcome = reply.ok ? 'ok' : reply.error.code;
    const seconds = (performance.now() - started) / 1000;
    this.options.metrics?.rpcHandled.inc({ subject: def.subject, outcome });
    this.options.metrics?.rpcDuration.observe({ subject: def.subject }, seconds);
    // Commands at info (they change state), queries at debug; the request id ties them to the HTTP call.
    this.options.logger[def.kind === 'query' ? 'debug' : 'info'](
      { request_id: requestId, subject: def.subject, outcome, duration_ms: Math.round(seconds * 1000) },
      'rpc handled',
    );
    if (!msg.reply) return;
    const body = new TextEncoder().encode(JSON.stringify(reply));
    if (body.byteLength <= chunkSize(this.options.nc)) {
      msg.respond(body);
      return;
    }
    const served = servePayload(this.options.nc, body);
    msg.respond(new Uint8Array(), { headers: served.headers });
    await served.done;
  }

  private async readRequest(msg: Msg): Promise<unknown> {
    if (!isChunked(msg.headers)) return safeJson(msg);
    try {
      return JSON.parse(new TextDecoder().decode(await fetchPayload(this.options.nc, msg.headers!)));
    } catch (err) {
      this.options.logger.warn({ err, subject: msg.subject }, 'could not fetch a chunked request');
      return undefined;
    }
  }

  private async runCommand(def: RpcDefinition, handler: RpcHandler, data: unknown, call: RpcCallContext) {
    const result = await inTransaction(this.options.db, async (trx) => {
      const log = trx as unknown as Transaction<MessagingTables>;
      if (call.command_id) {
        // Insert first: a concurrent repeat blocks on the primary key until we commit, then conflicts.
        const claimed = await log
          .insertInto('command_log')
          .values({ command_id: call.command_id, subject: def.subject, reply: 'null' })
          .onConflict((oc) => oc.column('command_id').doNothing())
          .returning('command_id')
          .executeTakeFirst();
        if (!claimed) {
          const prior = await log
            .selectFrom('command_log')
            .select(['subject', 'reply'])
            .where('command_id', '=', call.command_id)
            .executeTakeFirstOrThrow();
          if (prior.subject !== def.subject) {
            throw new DomainError('idempotency_key_reused', 'this command id was already used for another command');
          }
          return prior.reply;
        }
      }
      // The caller parses the reply against the contract on receipt; the command log keeps it as sent.
      const value = await handler(data, { call, trx });
      if (call.command_id) {
        await sql`update command_log set reply = ${JSON.stringify(value)}::jsonb where command_id = ${call.command_id}`.execute(
          trx,
        );
      }
      return value;
    });
    faultPoint('rpc.after_commit', def.subject);
    return result;
  }

  private toErrorBody(err: unknown, def: RpcDefinition, requestId?: string): RpcErrorBody {
    const storeProblem = isBlobError(err) ? blobProblem(err) : undefined;
    if (storeProblem) {
      // The store's own error names keys, ids, hosts and paths: it goes to the log, the caller gets the code.
      if (storeProblem.code === 'storage_error') {
        this.options.logger.warn(
          { err, subject: def.subject, request_id: requestId },
          'RPC handler: object store failed',
        );
      }
      err = storeProblem;
    } else if (!isDomainError(err) && isPoolSaturated(err)) {
      // Every connection of this process is busy: the caller retries (503 with Retry-After); Postgres is up.
      err = databaseBusy(err);
    } else if (!isDomainError(err) && isPostgresConnectionError(err)) {
      // An outage, logged once by the monitor; the caller is told to retry (503 with Retry-After).
      this.options.monitor?.down('postgres', err);
      err = unavailable('postgres', err);
    }
    if (isDomainError(err)) return { code: err.code, message: err.message, details: err.details };
    this.options.logger.error({ err, subject: def.subject, request_id: requestId }, 'RPC handler failed');
    return { code: 'internal', message: 'internal error' };
  }
}

/**
 * What a blob store error that escaped a handler means to the caller: the store failing (S3 5xx, a
 * refused or timed-out connection, EIO) is `storage_error` (502, retry later), a missing object
 * `not_found`. Any other blob error is the handler's bug (a bad key, part or range) and stays `internal`.
 */
function blobProblem(err: BlobError): DomainError | undefined {
  switch (err.code) {
    case 'storage_failed':
      return new DomainError(
        'storage_error',
        'the object store failed; nothing was recorded; retry later',
        { retry_after_seconds: 5 },
        { cause: err },
      );
    case 'not_found':
      return new DomainError('not_found', 'the stored object was not found', undefined, { cause: err });
    default:
      return undefined;
  }
}

function safeJson(msg: Msg): unknown {
  try {
    return msg.json();
  } catch {
    return undefined;
  }
}
