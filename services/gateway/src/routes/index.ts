import type { RouteDefinition } from '../http/route.js';
import { batchRoutes } from './batch.routes.js';
import { bulkRunRoutes } from './bulk-run.routes.js';
import { deviceRoutes } from './device.routes.js';
import { episodeRoutes } from './episode.routes.js';
import { orderRoutes } from './order.routes.js';
import { qaRoutes } from './qa.routes.js';
import { sceneRoutes } from './scene.routes.js';
import { taskRoutes } from './task.routes.js';
import { uploadRoutes } from './upload.routes.js';
import { workstationRoutes } from './workstation.routes.js';

/** Every authenticated /api/v1 route; the OpenAPI document is generated from this list. */
export const apiRoutes: readonly RouteDefinition[] = [
  ...sceneRoutes,
  ...orderRoutes,
  ...workstationRoutes,
  ...batchRoutes,
  ...taskRoutes,
  ...episodeRoutes,
  ...deviceRoutes,
  ...uploadRoutes,
  ...qaRoutes,
  ...bulkRunRoutes,
];
