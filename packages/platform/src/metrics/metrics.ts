import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

/** The Prometheus registry of one process and the instruments the platform records into. */
export interface Metrics {
  readonly registry: Registry;
  readonly rpcHandled: Counter<'subject' | 'outcome'>;
  readonly rpcDuration: Histogram<'subject'>;
  /** RPC calls this process made as a client, by outcome (see RpcClient). */
  readonly rpcCalls: Counter<'subject' | 'outcome'>;
  readonly consumerMessages: Counter<'consumer' | 'outcome'>;
  readonly consumerDuration: Histogram<'consumer'>;
  readonly outboxPublished: Counter;
  readonly outboxDuplicates: Counter;
  readonly outboxFailures: Counter;
  readonly deadLettered: Counter<'consumer'>;
  readonly httpRequests: Counter<'method' | 'route' | 'status'>;
  readonly httpDuration: Histogram<'method' | 'route'>;
  /** Gauges whose value is read at scrape time (outbox backlog, pool usage). */
  gauge(name: string, help: string, collect: () => Promise<number> | number): void;
  /** A service's own counter, registered once per name (a second call returns the first). */
  counter<L extends string = string>(name: string, help: string, labelNames?: readonly L[]): Counter<L>;
  /** A service's own histogram (seconds unless the name says otherwise), registered once per name. */
  histogram<L extends string = string>(
    name: string,
    help: string,
    options?: { labelNames?: readonly L[]; buckets?: number[] },
  ): Histogram<L>;
}

export function createMetrics(service: string): Metrics {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  const registers = [registry];
  return {
    registry,
    rpcHandled: new Counter({
      name: 'ferry_rpc_requests_total',
      help: 'RPC requests handled, by outcome (ok or the error code).',
      labelNames: ['subject', 'outcome'],
      registers,
    }),
    rpcDuration: new Histogram({
      name: 'ferry_rpc_duration_seconds',
      help: 'RPC handling time.',
      labelNames: ['subject'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    rpcCalls: new Counter({
      name: 'ferry_rpc_client_calls_total',
      help:
        'RPC calls made, by outcome: ok, the error code replied, no_responders, timeout, error, or not_sent (NATS ' +
        'known down: answered unavailable without a request going out).',
      labelNames: ['subject', 'outcome'],
      registers,
    }),
    consumerMessages: new Counter({
      name: 'ferry_consumer_messages_total',
      help: 'JetStream messages handled, by outcome (handled, duplicate, retry, dead_lettered).',
      labelNames: ['consumer', 'outcome'],
      registers,
    }),
    consumerDuration: new Histogram({
      name: 'ferry_consumer_duration_seconds',
      help: 'JetStream message handling time.',
      labelNames: ['consumer'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    outboxPublished: new Counter({ name: 'ferry_outbox_published_total', help: 'Outbox rows published.', registers }),
    outboxDuplicates: new Counter({
      name: 'ferry_outbox_duplicates_total',
      help: 'Outbox publishes JetStream reported as duplicate (republished after a relay crash).',
      registers,
    }),
    outboxFailures: new Counter({
      name: 'ferry_outbox_failures_total',
      help: 'Outbox publish attempts that failed.',
      registers,
    }),
    deadLettered: new Counter({
      name: 'ferry_dead_lettered_total',
      help: 'Messages sent to the DLQ by this process.',
      labelNames: ['consumer'],
      registers,
    }),
    httpRequests: new Counter({
      name: 'ferry_http_requests_total',
      help: 'HTTP requests answered.',
      labelNames: ['method', 'route', 'status'],
      registers,
    }),
    httpDuration: new Histogram({
      name: 'ferry_http_request_duration_seconds',
      help: 'HTTP request time.',
      labelNames: ['method', 'route'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    counter<L extends string>(name: string, help: string, labelNames: readonly L[] = []) {
      const existing = registry.getSingleMetric(name);
      if (existing) return existing as Counter<L>;
      return new Counter<L>({ name, help, labelNames: [...labelNames], registers });
    },
    histogram<L extends string>(
      name: string,
      help: string,
      options: { labelNames?: readonly L[]; buckets?: number[] } = {},
    ) {
      const existing = registry.getSingleMetric(name);
      if (existing) return existing as Histogram<L>;
      return new Histogram<L>({
        name,
        help,
        labelNames: [...(options.labelNames ?? [])],
        ...(options.buckets ? { buckets: options.buckets } : {}),
        registers,
      });
    },
    gauge(name, help, collect) {
      new Gauge({
        name,
        help,
        registers,
        async collect() {
          this.set(await collect());
        },
      });
    },
  };
}
