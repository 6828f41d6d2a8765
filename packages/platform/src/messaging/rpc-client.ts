import { HEADERS, type RpcCallContext, type RpcDefinition, RpcReplyEnvelope } from '@ferry/contracts';
import { type NatsConnection, NoRespondersError, RequestError, TimeoutError } from '@nats-io/transport-node';
import type { z } from 'zod';
import { DomainError } from '../errors/domain-error.js';
import { type DependencyMonitor, OUTAGE_RETRY_AFTER_SECONDS, unavailable } from '../health/dependency-monitor.js';
import type { Logger } from '../logging/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import type { Namespace } from '../namespace/namespace.js';
import { toNatsHeaders } from './envelope.js';
import { chunkSize, fetchPayload, isChunked, servePayload } from './rpc-chunks.js';

export interface RpcClientOptions {
  nc: NatsConnection;
  ns: Namespace;
  logger: Logger;
  /** How long to wait for a reply. Default 10 s. */
  timeoutMs?: number;
  /**
   * Knows when NATS is disconnected: calls then fail at once with `unavailable` instead of waiting out
   * the timeout (a 504 would wrongly suggest the command may still complete).
   */
  monitor?: DependencyMonitor;
  /**
   * Counts every call in `ferry_rpc_client_calls_total{subject,outcome}`: `ok`, the error code the service
   * replied with, `no_responders`, `timeout`, `error` (anything else), or `not_sent` when the monitor knew NATS
   * was down and no request went out. Default: not counted.
   */
  metrics?: Metrics;
}

function isNoResponders(err: unknown): boolean {
  return (
    err instanceof NoRespondersError ||
    (err instanceof RequestError && err.isNoResponders()) ||
    (err instanceof Error && err.cause instanceof NoRespondersError)
  );
}

function isTimeout(err: unknown): boolean {
  return err instanceof TimeoutError || (err instanceof Error && err.cause instanceof TimeoutError);
}

/**
 * Typed calls to a service. Every payload is parsed against its contract where it is received: the
 * service parses the request, this client the reply. Remote domain errors are rethrown as DomainError
 * with their code; no responders becomes `unavailable`, no answer in time `upstream_timeout`.
 */
export class RpcClient {
  constructor(private readonly options: RpcClientOptions) {}

  async call<R extends RpcDefinition>(
    def: R,
    data: z.input<R['request']>,
    ctx: RpcCallContext,
    options: { timeoutMs?: number } = {},
  ): Promise<z.infer<R['reply']>> {
    const count = (outcome: string) => this.options.metrics?.rpcCalls.inc({ subject: def.subject, outcome });
    if (this.options.monitor?.isDown('nats')) {
      count('not_sent');
      throw unavailable('nats');
    }
    // Validated on receipt (DESIGN §2): the service parses the request, we parse the reply.
    const request = data;
    const { nc } = this.options;
    const timeout = options.timeoutMs ?? this.options.timeoutMs ?? 10_000;
    const body = new TextEncoder().encode(JSON.stringify({ ctx, data: request }));
    const large = body.byteLength > chunkSize(nc) ? servePayload(nc, body, { timeoutMs: timeout }) : undefined;
    const headers = large?.headers ?? toNatsHeaders({});
    headers.set(HEADERS.correlationId, ctx.request_id);
    let raw: unknown;
    try {
      const msg = await nc.request(this.options.ns.subject(def.subject), large ? new Uint8Array() : body, {
        timeout,
        headers,
      });
      raw = isChunked(msg.headers)
        ? JSON.parse(new TextDecoder().decode(await fetchPayload(nc, msg.headers!)))
        : msg.json();
    } catch (err) {
      if (isNoResponders(err)) {
        count('no_responders');
        throw new DomainError(
          'unavailable',
          `the ${def.service} service is not answering`,
          { service: def.service, retry_after_seconds: OUTAGE_RETRY_AFTER_SECONDS },
          { cause: err },
        );
      }
      if (isTimeout(err)) {
        count('timeout');
        throw new DomainError(
          'upstream_timeout',
          `the ${def.service} service did not answer in time`,
          {
            service: def.service,
          },
          { cause: err },
        );
      }
      count('error');
      throw err;
    }
    const parsed = RpcReplyEnvelope.safeParse(raw);
    if (!parsed.success) {
      count('error');
      throw parsed.error;
    }
    const reply = parsed.data;
    if (!reply.ok) {
      count(reply.error.code);
      throw new DomainError(reply.error.code as DomainError['code'], reply.error.message, reply.error.details);
    }
    count('ok');
    return def.reply.parse(reply.data) as z.infer<R['reply']>;
  }
}
