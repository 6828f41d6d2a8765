import type { RouteDefinition } from '../http/route.js';
import { orderRoutes } from './order.routes.js';
import { sceneRoutes } from './scene.routes.js';

/** Every authenticated /api/v1 route; the OpenAPI document is generated from this list. */
export const apiRoutes: readonly RouteDefinition[] = [...sceneRoutes, ...orderRoutes];
