export { type BearerStrategy, jwtStrategy } from './auth/authenticate.js';
export { deviceTokenStrategy } from './auth/device-token.js';
export { StreamTickets, type StreamTicketsOptions } from './auth/stream-ticket.js';
export { GatewayConfig } from './config.js';
export type { GatewayDB } from './database.js';
export { createGateway, type GatewayDeps } from './gateway.js';
export { IdempotencyStore } from './idempotency/idempotency.store.js';
export { GATEWAY_MIGRATIONS } from './migrations.js';
export { buildOpenApiDocument } from './openapi/openapi-document.js';
export { apiRoutes } from './routes/index.js';
export {
  EventStreamHub,
  type EventStreamOptions,
  encodeFrame,
  type SseFrame,
} from './sse/event-stream.js';
