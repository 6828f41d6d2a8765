import { Readable } from 'node:stream';
import { type S3TestConnection, startS3rver } from '@ferry/platform/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deviceWorld } from '../support/device-world.js';
import { Payload } from '../support/payload.js';
import { System } from '../support/system.js';

const MiB = 1024 * 1024;

/**
 * The same protocol with S3-compatible storage (s3rver, a real S3 protocol server, in this process):
 * part URLs are presigned UploadPart URLs straight to the store, so no byte passes through our
 * processes; the device confirms each part with the ETag S3 answered.
 */
describe('uploads to S3-compatible storage', () => {
  let s3: { connection: S3TestConnection; stop: () => Promise<void> };
  let system: System;
  beforeAll(async () => {
    s3 = await startS3rver();
    system = await System.create();
    const c = s3.connection;
    await system.start(['production', 'transfer', 'gateway'], {
      env: {
        BLOB_STORE: 's3',
        S3_ENDPOINT: c.endpoint,
        S3_BUCKET: c.bucket,
        S3_REGION: c.region,
        S3_ACCESS_KEY_ID: c.credentials.accessKeyId,
        S3_SECRET_ACCESS_KEY: c.credentials.secretAccessKey,
        UPLOAD_PART_SIZE: String(5 * MiB),
      },
    });
  }, 120_000);
  afterAll(async () => {
    await system?.shutdown();
    await s3?.stop();
  });

  it('uploads through presigned part URLs and the upload verifies and is acknowledged', async () => {
    const w = await deviceWorld(system);
    await w.device.api('POST', `/tasks/${w.taskIds[0]}/finish`, {});
    const mcap = new Payload(12 * MiB, 's3');
    const uploader = w.uploader();
    const opened = await uploader.open(w.taskIds[0]!, [
      { role: 'mcap', size_bytes: mcap.size, sha256: await mcap.sha256() },
    ]);
    expect(opened.status).toBe(201);
    // Straight to the object store, signed by it: not our gateway.
    for (const part of opened.body.parts!) {
      expect(part.url.startsWith(s3.connection.endpoint)).toBe(true);
      expect(part.url).toMatch(/X-Amz-Signature=/);
      expect(part.url).toMatch(/partNumber=\d+/);
    }
    await uploader.sendMissing(opened.body.id, { mcap: (s, l) => mcap.stream(s, l) });
    const before = await uploader.get(opened.body.id);
    expect(before.files[0]).toMatchObject({ received_parts: [1, 2, 3], missing_parts: [] });
    expect((await uploader.complete(opened.body.id)).status).toBe(202);
    const done = await uploader.waitForOutcome(opened.body.id);
    expect(done.status).toBe('acknowledged');
    const episode = await w.operator('GET', `/episodes/${done.episode_id}`);
    expect(episode.body.files.mcap).toMatchObject({ size_bytes: mcap.size, sha256: await mcap.sha256() });
  });

  it('rejects with size_mismatch when the object the store assembled is not the declared size', async () => {
    // s3rver does not enforce the signed Content-Length, as real S3 does: a device sending a short part
    // gets it stored. Verification measures the assembled object and refuses it.
    const w = await deviceWorld(system);
    await w.device.api('POST', `/tasks/${w.taskIds[0]}/finish`, {});
    const mcap = new Payload(12 * MiB, 's3-short');
    const uploader = w.uploader();
    const { body: u } = await uploader.open(w.taskIds[0]!, [
      { role: 'mcap', size_bytes: mcap.size, sha256: await mcap.sha256() },
    ]);
    for (const t of u.parts!) {
      const length = t.part_number === 3 ? t.size_bytes - 1000 : t.size_bytes;
      const res = await fetch(t.url, {
        method: 'PUT',
        headers: { ...t.headers, 'content-length': String(length) },
        body: Readable.toWeb(mcap.stream((t.part_number - 1) * u.part_size, length)) as ReadableStream,
        duplex: 'half',
      } as RequestInit);
      expect(res.status).toBe(200);
      await uploader.confirm(u.id, t, String(res.headers.get('etag')).replace(/"/g, ''));
    }
    await uploader.complete(u.id);
    const done = await uploader.waitForOutcome(u.id);
    expect(done).toMatchObject({ status: 'rejected', rejection: { reason: 'size_mismatch' } });
    expect(done.rejection!.detail).toBe(`mcap holds ${mcap.size - 1000} bytes; ${mcap.size} were declared`);
    expect((await w.operator('GET', `/episodes?task_id=${u.task_id}`)).body.items).toEqual([]);
  });
});
