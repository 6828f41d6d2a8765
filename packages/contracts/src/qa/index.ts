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
   * Every new episode is projected and checked automatically. The check streams the whole recording, so
   * it runs outside any transaction (a claim with a lease makes it exactly once); the runner keeps the
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
  /** Labels (a batch recall) follow production's episodes. */
  episodeUpdated: defineConsumer({
    durable: 'qa__episode-updated',
    service: 'qa',
    events: [episodeEvents.updated],
  }),
  /** Robot types and expected topics of devices, for profiles and filters. */
  devices: defineConsumer({
    durable: 'qa__devices',
    service: 'qa',
    events: [deviceEvents.registered, deviceEvents.updated, deviceEvents.deleted],
    filterSubject: 'transfer.evt.device.*.v1',
  }),
} as const;
