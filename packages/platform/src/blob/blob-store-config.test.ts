import { describe, expect, it } from 'vitest';
import { BaseConfig, ConfigError, loadConfig } from '../config/config.js';
import { BlobStoreConfig, createBlobStore } from './blob-store-config.js';
import { LocalBlobStore } from './local-blob-store.js';
import { S3BlobStore } from './s3-blob-store.js';

const s3Env = {
  BLOB_STORE: 's3',
  S3_ENDPOINT: 'http://127.0.0.1:9000',
  S3_BUCKET: 'ferry',
  S3_ACCESS_KEY_ID: 'ferry',
  S3_SECRET_ACCESS_KEY: 'ferry-minio-secret',
};

describe('BlobStoreConfig', () => {
  it('defaults to a local directory under .data', () => {
    const config = loadConfig(BlobStoreConfig, {});
    expect(config).toMatchObject({ BLOB_STORE: 'local', BLOB_DIR: '.data/blobs', S3_FORCE_PATH_STYLE: true });
    expect(createBlobStore(config)).toBeInstanceOf(LocalBlobStore);
  });

  it('names every S3 setting missing when BLOB_STORE=s3', () => {
    const err = (() => {
      try {
        loadConfig(BlobStoreConfig, { BLOB_STORE: 's3', S3_BUCKET: 'ferry' });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).issues.map((i) => i.variable)).toEqual([
      'S3_ENDPOINT',
      'S3_ACCESS_KEY_ID',
      'S3_SECRET_ACCESS_KEY',
    ]);
  });

  it('builds an S3 store, reading S3_FORCE_PATH_STYLE=false as false', () => {
    const config = loadConfig(BlobStoreConfig, { ...s3Env, S3_FORCE_PATH_STYLE: 'false' });
    expect(config).toMatchObject({ S3_REGION: 'us-east-1', S3_FORCE_PATH_STYLE: false });
    const store = createBlobStore(config);
    expect(store).toBeInstanceOf(S3BlobStore);
    (store as S3BlobStore).destroy();
  });

  it('refuses a bad value with the variable named', () => {
    expect(() => loadConfig(BlobStoreConfig, { ...s3Env, S3_ENDPOINT: 'minio:9000' })).toThrow(/S3_ENDPOINT/);
    expect(() => loadConfig(BlobStoreConfig, { BLOB_STORE: 'ftp' })).toThrow(/BLOB_STORE/);
  });

  it('keeps its check when a service extends it with its own settings', () => {
    const ServiceWithBlobs = BlobStoreConfig.extend(BaseConfig.shape);
    expect(() => loadConfig(ServiceWithBlobs, { BLOB_STORE: 's3' })).toThrow(/S3_BUCKET/);
    expect(loadConfig(ServiceWithBlobs, s3Env)).toMatchObject({ BLOB_STORE: 's3', LOG_LEVEL: 'info' });
  });
});
