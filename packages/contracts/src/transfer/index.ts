export * from './devices.js';
export * from './uploads.js';

import { defineConsumer, healthPing } from '../messaging.js';
import { productionEvents } from '../production/index.js';
import { deviceEvents, deviceRpc } from './devices.js';
import { uploadEvents, uploadLifecycleEvents, uploadRpc } from './uploads.js';

export const transferRpc = {
  health: healthPing('transfer'),
  device: deviceRpc,
  upload: uploadRpc,
} as const;

export const transferEvents = {
  device: deviceEvents,
  upload: { ...uploadEvents, ...uploadLifecycleEvents },
} as const;

/** Durable consumers owned by the transfer service. */
export const transferConsumers = {
  /**
   * Verifies completed uploads: assembles the parts and re-reads every byte (a multi-GB sha256), so
   * in-flight work per replica is small; the runner calls working() every ack_wait/3 meanwhile, so a
   * short ack wait only bounds how soon a dead replica's message goes to another. The hash runs outside
   * any transaction; the verdict is a compare-and-set `verifying → verified | rejected` with its event
   * in one short transaction, so a redelivery finds the upload decided and does nothing.
   */
  verifyUpload: defineConsumer({
    durable: 'transfer__verify-upload',
    service: 'transfer',
    events: [uploadLifecycleEvents.completed],
    transaction: 'handler',
    ackWaitMs: 15_000,
    concurrency: 2,
    maxAckPending: 64,
  }),
  /** ACK: the episode production created for an upload. */
  episodeCreated: defineConsumer({
    durable: 'transfer__episode-created',
    service: 'transfer',
    events: [productionEvents.episode.created],
  }),
  /** ACK: production refused a verified upload. */
  uploadRejected: defineConsumer({
    durable: 'transfer__upload-rejected',
    service: 'transfer',
    events: [productionEvents.episode.uploadRejected],
  }),
} as const;
