import { z } from 'zod';
import { ConfigError } from '../config/config.js';
import type { Logger } from '../logging/logger.js';
import type { BlobStore } from './blob-store.js';
import { LocalBlobStore } from './local-blob-store.js';
import { S3BlobStore } from './s3-blob-store.js';

const S3_REQUIRED = ['S3_ENDPOINT', 'S3_BUCKET', 'S3_ACCESS_KEY_ID', 'S3_SECRET_ACCESS_KEY'] as const;

/**
 * Where a service keeps blobs. A service that needs a store extends from this schema, so the check
 * below comes along: `BlobStoreConfig.extend({ ...ServiceConfig.shape, ...own })`.
 */
export const BlobStoreConfig = z
  .object({
    /** `local` (a directory, the default) or `s3` (any S3-compatible store). */
    BLOB_STORE: z.enum(['local', 's3']).default('local'),
    /** Root directory of the local store, relative to the working directory. */
    BLOB_DIR: z.string().min(1).default('.data/blobs'),
    /** S3 API endpoint the services use, e.g. `http://127.0.0.1:9000`. Required when BLOB_STORE=s3. */
    S3_ENDPOINT: z.url({ protocol: /^https?$/ }).optional(),
    /** Endpoint written into presigned part URLs, when devices reach the store by another address. Default: S3_ENDPOINT. */
    S3_PUBLIC_ENDPOINT: z.url({ protocol: /^https?$/ }).optional(),
    S3_REGION: z.string().min(1).default('us-east-1'),
    /** Bucket holding every object; it must exist. Required when BLOB_STORE=s3. */
    S3_BUCKET: z
      .string()
      .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be a valid S3 bucket name')
      .optional(),
    S3_ACCESS_KEY_ID: z.string().min(1).optional(),
    S3_SECRET_ACCESS_KEY: z.string().min(1).optional(),
    /** Bucket in the URL path rather than the host name. Default true (MinIO needs it; AWS accepts it). */
    S3_FORCE_PATH_STYLE: z.stringbool().default(true),
  })
  .superRefine((config, ctx) => {
    if (config.BLOB_STORE !== 's3') return;
    for (const variable of S3_REQUIRED) {
      if (config[variable] === undefined) {
        ctx.addIssue({ code: 'custom', path: [variable], message: 'required when BLOB_STORE=s3' });
      }
    }
  });
export type BlobStoreConfig = z.infer<typeof BlobStoreConfig>;

export interface CreateBlobStoreOptions {
  /** Receives the S3 SDK's own warnings. Default: discarded. */
  logger?: Logger;
}

/** The store the configuration names. Throws ConfigError when BLOB_STORE=s3 lacks a setting. */
export function createBlobStore(config: BlobStoreConfig, options: CreateBlobStoreOptions = {}): BlobStore {
  if (config.BLOB_STORE === 'local') return new LocalBlobStore({ root: config.BLOB_DIR });
  const missing = S3_REQUIRED.filter((variable) => config[variable] === undefined);
  if (missing.length > 0) {
    throw new ConfigError(missing.map((variable) => ({ variable, message: 'required when BLOB_STORE=s3' })));
  }
  return new S3BlobStore({
    endpoint: config.S3_ENDPOINT,
    publicEndpoint: config.S3_PUBLIC_ENDPOINT,
    region: config.S3_REGION,
    bucket: config.S3_BUCKET!,
    credentials: { accessKeyId: config.S3_ACCESS_KEY_ID!, secretAccessKey: config.S3_SECRET_ACCESS_KEY! },
    forcePathStyle: config.S3_FORCE_PATH_STYLE,
    logger: options.logger,
  });
}
