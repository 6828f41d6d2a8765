import {
  ALL_CONSUMERS,
  type ConsumerDefinition,
  DUPLICATE_WINDOW_MS,
  STREAMS,
  type StreamDefinition,
} from '@ferry/contracts';
import {
  AckPolicy,
  type ConsumerConfig,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiError,
  type JetStreamManager,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
} from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import type { Namespace } from '../namespace/namespace.js';

/**
 * Server advisories for messages that exhausted max_deliver or were terminated, captured in a stream
 * so the DLQ forwarder misses none while it is down (core-NATS advisories are fire-and-forget).
 */
export const ADVISORIES_STREAM = 'ADVISORIES';
export const DLQ_FORWARDER_DURABLE = 'platform__dlq-forwarder';

const EVENT_STREAMS = [STREAMS.PRODUCTION, STREAMS.TRANSFER, STREAMS.QA] as const;

export function advisorySubjects(ns: Namespace): string[] {
  return EVENT_STREAMS.flatMap((s) => [
    `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${ns.stream(s.name)}.*`,
    `$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.${ns.stream(s.name)}.*`,
  ]);
}

export interface TopologyOptions {
  /** JetStream replicas per stream: 1 on a single server, 3 on a cluster. Default 1. */
  replicas?: number;
}

type NamedStreamConfig = Partial<StreamConfig> & { name: string };

export function streamConfig(ns: Namespace, def: StreamDefinition, options: TopologyOptions = {}): NamedStreamConfig {
  return {
    name: ns.stream(def.name),
    subjects: def.subjects.map((s) => ns.subject(s)),
    // Limits retention: replayable by any number of consumers, aged out after max_age.
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    max_age: nanos(def.maxAgeMs),
    duplicate_window: nanos(DUPLICATE_WINDOW_MS),
    num_replicas: options.replicas ?? 1,
    allow_direct: true,
    // Event streams are history: nobody deletes single events. The DLQ is a worklist: replay removes.
    deny_delete: def.name !== STREAMS.DLQ.name,
    deny_purge: false,
  };
}

export function advisoriesStreamConfig(ns: Namespace, options: TopologyOptions = {}): NamedStreamConfig {
  return {
    name: ns.stream(ADVISORIES_STREAM),
    subjects: advisorySubjects(ns),
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    max_age: nanos(7 * 24 * 3600 * 1000),
    duplicate_window: nanos(DUPLICATE_WINDOW_MS),
    num_replicas: options.replicas ?? 1,
  };
}

export function consumerConfig(ns: Namespace, def: ConsumerDefinition): Partial<ConsumerConfig> {
  return {
    durable_name: def.durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    filter_subject: ns.subject(def.filterSubject),
    ack_wait: nanos(def.ackWaitMs),
    max_deliver: def.maxDeliver,
    max_ack_pending: def.maxAckPending,
  };
}

export function dlqForwarderConfig(): Partial<ConsumerConfig> {
  return {
    durable_name: DLQ_FORWARDER_DURABLE,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: nanos(30_000),
    max_deliver: -1, // the forwarder must never give up on an advisory; failures retry with delay
    max_ack_pending: 64,
  };
}

function isNotFound(err: unknown): boolean {
  return err instanceof JetStreamApiError && (err.code === 10059 || err.code === 10014);
}

export interface ProvisionReport {
  created: string[];
  updated: string[];
  unchanged: string[];
}

/**
 * Creates or updates every stream and durable consumer of the system. Idempotent: the setup step
 * (`ferry provision`, part of `npm start`) runs it; services only verify (see verifyTopology).
 */
export async function provisionTopology(
  jsm: JetStreamManager,
  ns: Namespace,
  options: TopologyOptions & { consumers?: readonly ConsumerDefinition[] } = {},
): Promise<ProvisionReport> {
  const report: ProvisionReport = { created: [], updated: [], unchanged: [] };
  const streams = [
    ...Object.values(STREAMS).map((s) => streamConfig(ns, s, options)),
    advisoriesStreamConfig(ns, options),
  ];
  for (const cfg of streams) {
    const name = cfg.name as string;
    try {
      const info = await jsm.streams.info(name);
      const current = info.config;
      const drift =
        JSON.stringify([...current.subjects].sort()) !== JSON.stringify([...(cfg.subjects ?? [])].sort()) ||
        current.max_age !== cfg.max_age ||
        current.duplicate_window !== cfg.duplicate_window ||
        current.deny_delete !== (cfg.deny_delete ?? false) ||
        current.allow_direct !== (cfg.allow_direct ?? false);
      if (drift) {
        await jsm.streams.update(name, {
          subjects: cfg.subjects,
          max_age: cfg.max_age,
          duplicate_window: cfg.duplicate_window,
          deny_delete: cfg.deny_delete,
          allow_direct: cfg.allow_direct,
        });
        report.updated.push(`stream ${name}`);
      } else {
        report.unchanged.push(`stream ${name}`);
      }
    } catch (err) {
      if (!isNotFound(err)) throw err;
      await jsm.streams.add(cfg);
      report.created.push(`stream ${name}`);
    }
  }
  const consumers = [
    ...(options.consumers ?? ALL_CONSUMERS).map((d) => ({
      stream: ns.stream(d.stream),
      cfg: consumerConfig(ns, d),
    })),
    { stream: ns.stream(ADVISORIES_STREAM), cfg: dlqForwarderConfig() },
  ];
  for (const { stream, cfg } of consumers) {
    const label = `consumer ${stream}/${cfg.durable_name}`;
    try {
      const info = await jsm.consumers.info(stream, cfg.durable_name as string);
      const c = info.config;
      const drift =
        (c.filter_subject ?? undefined) !== (cfg.filter_subject ?? undefined) ||
        c.ack_wait !== cfg.ack_wait ||
        c.max_deliver !== cfg.max_deliver ||
        c.max_ack_pending !== cfg.max_ack_pending;
      if (drift) {
        await jsm.consumers.update(stream, cfg.durable_name as string, {
          filter_subject: cfg.filter_subject,
          ack_wait: cfg.ack_wait,
          max_deliver: cfg.max_deliver,
          max_ack_pending: cfg.max_ack_pending,
        });
        report.updated.push(label);
      } else {
        report.unchanged.push(label);
      }
    } catch (err) {
      if (!isNotFound(err)) throw err;
      await jsm.consumers.add(stream, cfg);
      report.created.push(label);
    }
  }
  return report;
}

export class TopologyError extends Error {
  override readonly name = 'TopologyError';
}

/** Fails fast, naming what is missing, when the streams or consumers a service needs do not exist. */
export async function verifyTopology(
  jsm: JetStreamManager,
  ns: Namespace,
  needs: { streams: readonly string[]; consumers: readonly ConsumerDefinition[] },
): Promise<void> {
  const missing: string[] = [];
  for (const s of needs.streams) {
    try {
      await jsm.streams.info(ns.stream(s));
    } catch (err) {
      if (!isNotFound(err)) throw err;
      missing.push(`stream ${ns.stream(s)}`);
    }
  }
  for (const c of needs.consumers) {
    try {
      await jsm.consumers.info(ns.stream(c.stream), c.durable);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      missing.push(`consumer ${ns.stream(c.stream)}/${c.durable}`);
    }
  }
  if (missing.length > 0) {
    throw new TopologyError(
      `JetStream is not provisioned: missing ${missing.join(', ')}. Run \`npm run ferry -- setup\` (or \`ferry provision\`).`,
    );
  }
}
