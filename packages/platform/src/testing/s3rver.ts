import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import S3rver from 's3rver';

export interface S3TestConnection {
  endpoint: string;
  region: string;
  bucket: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
}

/**
 * s3rver in this process, on a free port, storing into a temporary directory: a real S3 protocol
 * server for tests on machines without Docker (it checks expiry of presigned URLs, not signatures).
 */
export async function startS3rver(options: { port?: number; directory?: string } = {}): Promise<{
  connection: S3TestConnection;
  directory: string;
  port: number;
  stop: (o?: { keep?: boolean }) => Promise<void>;
}> {
  // Same port and directory: a store that comes back after an outage, with its objects.
  const directory = options.directory ?? (await mkdtemp(path.join(tmpdir(), 'ferry-s3rver-')));
  const bucket = 'ferry-test';
  const server = new S3rver({ address: '127.0.0.1', port: options.port ?? 0, directory, silent: true });
  const { port } = await server.run();
  const connection: S3TestConnection = {
    endpoint: `http://127.0.0.1:${port}`,
    region: 'us-east-1',
    bucket,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' }, // s3rver's built-in account
  };
  await createBucket(connection);
  return {
    connection,
    directory,
    port,
    stop: async ({ keep = false } = {}) => {
      await server.close();
      if (!keep) await rm(directory, { recursive: true, force: true });
    },
  };
}

export async function createBucket(c: S3TestConnection): Promise<void> {
  const client = new S3Client({ ...c, forcePathStyle: true });
  try {
    await client.send(new CreateBucketCommand({ Bucket: c.bucket }));
  } catch (err) {
    if (!['BucketAlreadyOwnedByYou', 'BucketAlreadyExists'].includes((err as Error).name)) throw err;
  } finally {
    client.destroy();
  }
}
