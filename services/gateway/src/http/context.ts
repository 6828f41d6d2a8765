import type { Actor } from '@ferry/contracts';
import type { Logger } from '@ferry/platform';

declare module 'hono' {
  interface ContextVariableMap {
    /** The request id: the client's X-Request-Id when sane, else a fresh one. Echoed in responses. */
    requestId: string;
    /** Request-scoped logger carrying request_id. */
    log: Logger;
    /** Set by the auth middleware on every /api/v1 route that needs it. */
    actor: Actor;
  }
}
