export * from './bulk-run-stream.js';
export * from './bulk-runs.js';
export * from './profiles.js';
export * from './qa-episodes.js';

import { defineConsumer, healthPing } from '../messaging.js';
import { episodeEvents } from '../production/episodes.js';
import { deviceEvents } from '../transfer/devices.js';
import { bulkRunEvents, bulkRunRpc } from './bulk-runs.js';
import { qaEpisodeEvents, qaEpisodeRpc, qaProfileRpc } from './qa-episodes.js';

export const qaRpc = {
  health: healthPing('qa'),
  episode: qaEpisodeRpc,
  profile: qaProfileRpc,
  bulkRun: bulkRunRpc,
} as const;

export const qaEvents = {
  episode: qaEpisodeEvents,
  bulkRun: bulkRunEvents,
} as const;

/** Durable consumers owned by the QA service. */
export const qaConsumers = {
  /**
   * Projects every new episode at once, in the inbox transaction: the lists, filters, labels and bulk
   * selections see it even while auto QA's slower consumer is busy checking earlier ones.
   */
  episodes: defineConsumer({
    durable: 'qa__episodes',
    service: 'qa',
    events: [episodeEvents.created],
  }),
  /**
   * Every new episode is projected and checked automatically. The check streams the whole recording, so
   * it runs outside any transaction (a claim with a lease makes it exactly once); the consumer keeps the
   * message alive with working() meanwhile.
   */
  autoCheck: defineConsumer({
    durable: 'qa__auto-check',
    service: 'qa',
    events: [episodeEvents.created],
    transaction: 'handler',
    ackWaitMs: 15_000,
    concurrency: 2,
    maxAckPending: 64,
  }),
  /**
   * Auto QA that QA asks for again (`auto_check_requested`): an episode the claim sweeper re-drives because auto QA
   * gave up on it, or one checked before its device's robot type was known. Handled like qa__auto-check.
   */
  autoRecheck: defineConsumer({
    durable: 'qa__auto-recheck',
    service: 'qa',
    events: [qaEpisodeEvents.autoCheckRequested],
    transaction: 'handler',
    ackWaitMs: 15_000,
    concurrency: 1,
    maxAckPending: 64,
  }),
  /** Labels (a batch recall) follow production's episodes; one not projected yet is retried (`conflict`). */
  episodeUpdated: defineConsumer({
    durable: 'qa__episode-updated',
    service: 'qa',
    events: [episodeEvents.updated],
  }),
  /**
   * Robot types and expected topics of devices, for profiles and filters. One at a time per replica;
   * across replicas the device's own updated_at decides, so an older event never wins.
   */
  devices: defineConsumer({
    durable: 'qa__devices',
    service: 'qa',
    concurrency: 1,
    events: [deviceEvents.registered, deviceEvents.updated, deviceEvents.deleted],
    filterSubject: 'transfer.evt.device.*.v1',
  }),
} as const;
