import { BaseConfig, BlobStoreConfig } from '@ferry/platform';
import { z } from 'zod';

/**
 * The blob store settings are transfer's: with the local store, the gateway streams upload parts into
 * the same directory (BLOB_DIR must name one directory for both); with S3 the gateway never touches it.
 */
export const GatewayConfig = BlobStoreConfig.extend({
  ...BaseConfig.shape,
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  HOST: z.string().default('0.0.0.0'),
  /** Ops port: /healthz, /readyz and /metrics (Prometheus), kept off the public API port. Default 3104. */
  HEALTH_PORT: z.coerce.number().int().min(0).max(65535).default(3104),
  HEALTH_HOST: z.string().default('0.0.0.0'),
  /**
   * HS256 secret for operator/admin JWTs. No default on purpose: `npm start` generates one under
   * .data/ for local runs; anywhere else it must be provided. At least 32 characters.
   */
  FERRY_JWT_SECRET: z.string().min(32, 'must be at least 32 characters (generate one: openssl rand -base64 48)'),
  /** Largest accepted JSON body. Default 1 MiB (bulk routes allow more). */
  BODY_LIMIT_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .default(1024 * 1024),
  /** How long a downstream service may take to answer. Default 10 s. */
  RPC_TIMEOUT_MS: z.coerce.number().int().min(100).default(10_000),
  /**
   * How long a checked device token is trusted before transfer is asked again: a revoked token keeps
   * working at most this long on each gateway replica. Default 30 s; 0 asks every time.
   */
  DEVICE_TOKEN_CACHE_TTL_MS: z.coerce.number().int().min(0).max(600_000).default(30_000),
  /** Idempotency keys are kept this long (published in docs/api.md). Default 24 h. */
  IDEMPOTENCY_TTL_HOURS: z.coerce
    .number()
    .min(1)
    .max(24 * 30)
    .default(24),
  /**
   * How long a request holds its Idempotency-Key before a retry may take it over (with the same
   * command id) when the holder died without answering. Keep it above RPC_TIMEOUT_MS, or a retry can
   * take over while the first attempt still waits for its reply (still applied once: the service's
   * command log answers the second). Default 30 s.
   */
  IDEMPOTENCY_LEASE_MS: z.coerce.number().int().min(1_000).default(30_000),
  /**
   * Event streams (SSE): a `: ping` comment this often, which also re-reads the run's snapshot (a lost
   * terminal event still ends the stream). Default 15 s; proxies and load balancers cut ~60 s of silence.
   */
  SSE_HEARTBEAT_MS: z.coerce.number().int().min(100).max(120_000).default(15_000),
  /** The `retry:` hint sent to browsers: how long they wait before reconnecting. Default 3 s. */
  SSE_RETRY_MS: z.coerce.number().int().min(100).max(600_000).default(3_000),
  /**
   * Frames one client may have waiting while its socket does not drain; past this (or SSE_QUEUE_MAX_BYTES)
   * it is disconnected and resumes by id. Default 256.
   */
  SSE_QUEUE_MAX_FRAMES: z.coerce.number().int().min(1).max(100_000).default(256),
  /** Bytes one client may have waiting. Default 1 MiB: at most this much memory per slow client. */
  SSE_QUEUE_MAX_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .max(256 * 1024 * 1024)
    .default(1024 * 1024),
  /** A client whose socket has not drained for this long is disconnected, queue room or not. Default 30 s. */
  SSE_STALL_TIMEOUT_MS: z.coerce.number().int().min(100).max(600_000).default(30_000),
  /** How long a stream ticket (for EventSource) stays valid. Default 300 s. */
  SSE_TICKET_TTL_SECONDS: z.coerce.number().int().min(10).max(3600).default(300),
});
export type GatewayConfig = z.infer<typeof GatewayConfig>;
