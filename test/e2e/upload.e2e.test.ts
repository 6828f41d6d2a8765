import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { LocalBlobStore } from '@ferry/platform';
import { streamMessages } from '@ferry/platform/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deviceWorld } from '../support/device-world.js';
import { Payload } from '../support/payload.js';
import { System } from '../support/system.js';

const MiB = 1024 * 1024;

/** The first real path from a robot to an episode, through every process (DESIGN §6). */
describe('a device uploads a recording and gets its episode', () => {
  let system: System;
  beforeAll(async () => {
    system = await System.create();
    await system.start(['production', 'transfer', 'qa', 'gateway']);
  }, 120_000);
  afterAll(() => system?.shutdown());

  it('pairs, records, uploads 200 MB in parallel parts, and sees the upload acknowledged with its episode', async () => {
    const w = await deviceWorld(system);
    const [taskId] = w.taskIds;
    // The device sees its task, starts and finishes recording with its own token.
    const tasks = await w.device.api('GET', '/device/tasks');
    expect(tasks.status).toBe(200);
    expect(tasks.body.items.map((t: { id: string }) => t.id)).toEqual([taskId]);
    expect((await w.device.api('POST', `/tasks/${taskId}/start`, {})).body.task.status).toBe('in_progress');
    expect((await w.device.api('POST', `/tasks/${taskId}/finish`, {})).body.task.status).toBe('uploading');

    const mcap = new Payload(200 * MiB, 'e2e-mcap');
    const sidecarJson = Buffer.from(
      JSON.stringify({ recording: { duration_sec: 42.5, message_count: 1234, topics_recorded: ['/cam', '/joints'] } }),
    );
    const uploader = w.uploader({ concurrency: 4 });
    const opened = await uploader.open(taskId!, [
      { role: 'mcap', size_bytes: mcap.size, sha256: await mcap.sha256() },
      {
        role: 'sidecar',
        size_bytes: sidecarJson.length,
        sha256: createHash('sha256').update(sidecarJson).digest('hex'),
      },
    ]);
    expect(opened.status).toBe(201);
    expect(opened.body.part_size).toBe(64 * MiB);
    expect(opened.body.parts!.filter((p) => p.file === 'mcap')).toHaveLength(4);
    // Opening again returns the same upload.
    const again = await uploader.open(taskId!, [
      { role: 'mcap', size_bytes: mcap.size, sha256: await mcap.sha256() },
      {
        role: 'sidecar',
        size_bytes: sidecarJson.length,
        sha256: createHash('sha256').update(sidecarJson).digest('hex'),
      },
    ]);
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(opened.body.id);

    const sent = await uploader.sendMissing(opened.body.id, {
      mcap: (start, length) => mcap.stream(start, length),
      sidecar: (start, length) => Readable.from([sidecarJson.subarray(start, start + length)]),
    });
    expect(sent.files.every((f) => f.missing_parts.length === 0)).toBe(true);
    const completed = await uploader.complete(opened.body.id);
    expect(completed.status).toBe(202);
    expect(completed.body.status).toBe('verifying');

    const done = await uploader.waitForOutcome(opened.body.id);
    expect(done).toMatchObject({ status: 'acknowledged', rejection: null });
    expect(done.recording).toMatchObject({ duration_sec: 42.5, message_count: 1234, topics: ['/cam', '/joints'] });
    const episode = await w.operator('GET', `/episodes/${done.episode_id}`);
    expect(episode.status).toBe(200);
    const mcapFile = done.files.find((f) => f.role === 'mcap')!;
    expect(episode.body).toMatchObject({
      task_id: taskId,
      upload_id: done.id,
      device_id: w.device.device_id,
      files: {
        mcap: { object_key: mcapFile.object_key, size_bytes: mcap.size, sha256: await mcap.sha256() },
        sidecar: { size_bytes: sidecarJson.length },
      },
    });
    expect((await w.operator('GET', `/tasks/${taskId}`)).body.status).toBe('completed');
    // The operator sees the upload in the list.
    const list = await w.operator('GET', `/uploads?task_id=${taskId}`);
    expect(list.body.items.map((u: { id: string }) => u.id)).toEqual([done.id]);
    // One upload.verified on the stream.
    const verified = (await streamMessages(system.infra.jsm, system.infra.ns.stream('TRANSFER'))).filter(
      (m) => m.subject === system.infra.ns.subject('transfer.evt.upload.verified.v1'),
    );
    expect(verified.map((m) => m.json<{ upload_id: string }>().upload_id)).toEqual([done.id]);
  });

  it('rejects with sha256_mismatch a recording whose stored bytes do not hash to the declared sha256', async () => {
    const w = await deviceWorld(system);
    const [taskId] = w.taskIds;
    const mcap = new Payload(5 * MiB + 16, 'e2e-mismatch');
    const uploader = w.uploader();
    // Declared with the sha256 of other bytes of the same size: every part arrives whole, the file does not match.
    const declared = await new Payload(mcap.size, 'e2e-other').sha256();
    const opened = await uploader.open(taskId!, [{ role: 'mcap', size_bytes: mcap.size, sha256: declared }]);
    await uploader.sendMissing(opened.body.id, { mcap: (start, length) => mcap.stream(start, length) });
    expect((await uploader.complete(opened.body.id)).status).toBe(202);

    const done = await uploader.waitForOutcome(opened.body.id);
    expect(done).toMatchObject({ status: 'rejected', episode_id: null });
    expect(done.rejection).toMatchObject({ reason: 'sha256_mismatch', by: 'transfer' });
    expect(done.rejection!.detail).toContain(await mcap.sha256());
    // Nothing of it stays in the store: neither the staged parts nor the object verification assembled.
    expect(await new LocalBlobStore({ root: system.blobDir }).stat(done.files[0]!.object_key)).toBeNull();
    expect((await w.operator('GET', `/tasks/${taskId}`)).body.status).not.toBe('completed');
  });
});
