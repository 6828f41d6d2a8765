export * from './batches.js';
export * from './episodes.js';
export * from './orders.js';
export * from './scenes.js';
export * from './task-machine.js';
export * from './tasks.js';
export * from './workstations.js';

import { defineConsumer, healthPing } from '../messaging.js';
import { qaEpisodeEvents } from '../qa/qa-episodes.js';
import { uploadEvents } from '../transfer/uploads.js';
import { batchEvents, batchRpc } from './batches.js';
import { episodeEvents, episodeRpc } from './episodes.js';
import { orderEvents, orderRpc } from './orders.js';
import { sceneEvents, sceneRpc } from './scenes.js';
import { taskEvents, taskRpc } from './tasks.js';
import { workstationEvents, workstationRpc } from './workstations.js';

export const productionRpc = {
  health: healthPing('production'),
  scene: sceneRpc,
  order: orderRpc,
  workstation: workstationRpc,
  batch: batchRpc,
  task: taskRpc,
  episode: episodeRpc,
} as const;

export const productionEvents = {
  scene: sceneEvents,
  order: orderEvents,
  workstation: workstationEvents,
  batch: batchEvents,
  task: taskEvents,
  episode: episodeEvents,
} as const;

/** Durable consumers owned by the production service. */
export const productionConsumers = {
  /** Verified uploads become episodes (or rejections), exactly once per task. */
  uploadVerified: defineConsumer({
    durable: 'production__upload-verified',
    service: 'production',
    events: [uploadEvents.verified],
  }),
  /** The read copy of each episode's QA status (QA owns it), for production's `qa_status` filters. */
  qaStatus: defineConsumer({
    durable: 'production__qa-status',
    service: 'production',
    events: [qaEpisodeEvents.statusChanged],
  }),
} as const;
