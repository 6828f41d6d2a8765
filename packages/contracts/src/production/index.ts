export * from './orders.js';
export * from './scenes.js';

import { healthPing } from '../messaging.js';
import { orderEvents, orderRpc } from './orders.js';
import { sceneEvents, sceneRpc } from './scenes.js';

export const productionRpc = {
  health: healthPing('production'),
  scene: sceneRpc,
  order: orderRpc,
} as const;

export const productionEvents = { scene: sceneEvents, order: orderEvents } as const;

/** Durable consumers owned by the production service. */
export const productionConsumers = {} as const;
