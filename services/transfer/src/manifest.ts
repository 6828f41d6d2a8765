import { type ConsumerDefinition, type RpcDefinition, transferConsumers, transferRpc } from '@ferry/contracts';
import {
  BlobStoreConfig,
  createBlobStore,
  MAX_PART_SIZE,
  MIN_PART_SIZE,
  ServiceConfig,
  type ServiceDefinition,
} from '@ferry/platform';
import { z } from 'zod';
import { TRANSFER_MIGRATIONS } from './migrations.js';
import { TransferModule } from './transfer.module.js';

const MINUTE = 60_000;

export const TransferConfig = BlobStoreConfig.extend({
  ...ServiceConfig.shape,
  HEALTH_PORT: z.coerce.number().int().min(0).max(65535).default(3102),
  /**
   * HMAC secret signing the part URLs of the local store; the same on every transfer replica. No
   * default: `npm start` generates one under .data/; at least 32 characters.
   */
  UPLOAD_SIGNING_SECRET: z.string().min(32, 'must be at least 32 characters (openssl rand -base64 48)'),
  /** Bytes per part (S3's bounds: 5 MiB to 5 GiB). Default 64 MiB: a 4 GB recording is 64 parts. */
  UPLOAD_PART_SIZE: z.coerce
    .number()
    .int()
    .min(MIN_PART_SIZE)
    .max(MAX_PART_SIZE)
    .default(64 * 1024 * 1024),
  /** How long a part URL stays valid; the device asks for fresh ones with GET /uploads/{id}. Default 1 h. */
  UPLOAD_URL_TTL_SECONDS: z.coerce.number().int().min(60).max(604_800).default(3600),
  /** An open upload with no part for this long expires and its parts are deleted. Default 24 h. */
  UPLOAD_IDLE_TIMEOUT_MS: z.coerce
    .number()
    .int()
    .min(1000)
    .default(24 * 60 * MINUTE),
  /**
   * A verified upload not acknowledged for this long has upload.verified published again. Default 15 min:
   * beyond the streams' 10-minute duplicate window, inside which JetStream itself would drop the repeat.
   */
  UPLOAD_ACK_TIMEOUT_MS: z.coerce
    .number()
    .int()
    .min(1000)
    .default(15 * MINUTE),
  /** Republications before giving up (an error log and a metric). Default 5. */
  UPLOAD_MAX_REPUBLISH: z.coerce.number().int().min(0).max(100).default(5),
  /** Between housekeeping sweeps. Default 60 s. */
  UPLOAD_SWEEP_INTERVAL_MS: z.coerce.number().int().min(100).default(MINUTE),
});
export type TransferConfig = z.infer<typeof TransferConfig>;

function leaves<T>(tree: object, isLeaf: (v: unknown) => boolean): T[] {
  return Object.values(tree).flatMap((v) =>
    isLeaf(v) ? [v as T] : typeof v === 'object' && v ? leaves<T>(v, isLeaf) : [],
  );
}

export const transferService: ServiceDefinition<TransferConfig> = {
  name: 'transfer',
  config: TransferConfig,
  module: TransferModule,
  migrations: TRANSFER_MIGRATIONS,
  rpcs: leaves<RpcDefinition>(transferRpc, (v) => !!v && typeof v === 'object' && 'subject' in v).filter(
    (r) => r.subject !== 'transfer.rpc.health.ping',
  ),
  consumers: Object.values(transferConsumers) as ConsumerDefinition[],
  streams: ['TRANSFER', 'PRODUCTION', 'DLQ'],
  blobStore: (config) => createBlobStore(config),
};
