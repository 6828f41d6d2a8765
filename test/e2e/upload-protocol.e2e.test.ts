import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { PartTarget, Upload } from '@ferry/contracts';
import { LocalBlobStore } from '@ferry/platform';
import { streamMessages, waitFor, waitForEventsSettled } from '@ferry/platform/testing';
import { type Kysely, sql } from 'kysely';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DeviceWorld, deviceWorld } from '../support/device-world.js';
import { Payload } from '../support/payload.js';
import { exitWithin, System } from '../support/system.js';

const MiB = 1024 * 1024;
const PART = 5 * MiB; // the smallest part size S3 allows: 12 MiB is three parts (5, 5, 2)

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/**
 * The upload protocol's guarantees through real processes (local store): resume, repeats, rejections
 * with a reason and nothing downstream, one verification however many completes, and who may do what.
 */
describe('the upload protocol', () => {
  let system: System;
  beforeAll(async () => {
    system = await System.create();
    await system.start(['production', 'transfer', 'gateway'], {
      env: { UPLOAD_PART_SIZE: String(PART), DEVICE_TOKEN_CACHE_TTL_MS: '1500' },
    });
  }, 120_000);
  afterAll(() => system?.shutdown());

  /** A finished recording in `w`'s first task, with an open upload declaring `mcap` (+ a sidecar). */
  async function openUpload(w: DeviceWorld, mcap: Payload, options: { declaredSha?: string; sidecar?: Buffer } = {}) {
    const taskId = w.taskIds[0]!;
    await w.device.api('POST', `/tasks/${taskId}/finish`, {});
    const files = [
      { role: 'mcap' as const, size_bytes: mcap.size, sha256: options.declaredSha ?? (await mcap.sha256()) },
    ];
    if (options.sidecar)
      files.push({
        role: 'sidecar' as const,
        size_bytes: options.sidecar.length,
        sha256: sha(options.sidecar),
      } as never);
    const opened = await w.uploader().open(taskId, files);
    expect(opened.status).toBe(201);
    return opened.body;
  }

  const target = (u: Upload, file: 'mcap' | 'sidecar', n: number): PartTarget =>
    u.parts!.find((p) => p.file === file && p.part_number === n)!;

  async function send(w: DeviceWorld, u: Upload, mcap: Payload, n: number, options: { cutAfterBytes?: number } = {}) {
    const t = target(u, 'mcap', n);
    const uploader = w.uploader();
    const etag = await uploader.putPart(t, mcap.stream((n - 1) * u.part_size, t.size_bytes), options);
    await uploader.confirm(u.id, t, etag);
    return etag;
  }

  const declared = (u: Upload) => u.files.map((f) => ({ role: f.role, size_bytes: f.size_bytes, sha256: f.sha256 }));

  async function bytesOf(stream: Readable): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  /** Leaves one healthy transfer for the tests after a crash test, whatever happened in it. */
  async function healthyTransferAfter(doomed: unknown) {
    if (system.processes.get('transfer') === doomed) await system.stop('transfer', 'SIGKILL');
    if (!system.processes.has('transfer'))
      await system.start(['transfer'], { env: { UPLOAD_PART_SIZE: String(PART) } });
  }

  /** A device registered under `deviceId` in `w`'s organization, paired: its token's client. */
  async function pairedDevice(w: DeviceWorld, deviceId: string) {
    return system.client(await pairedDeviceToken(w, deviceId));
  }

  async function pairedDeviceToken(w: DeviceWorld, deviceId: string): Promise<string> {
    const device = await w.operator('POST', '/devices', { device_id: deviceId, robot_type: 'arm-v1' });
    expect(device.status).toBe(201);
    const pairing = await w.admin('POST', `/devices/${device.body.id}/pairing-tokens`, {});
    const res = await fetch(`${system.gatewayUrl}/api/v1/device-tokens`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ pairing_token: pairing.body.pairing_token }),
    });
    expect(res.status).toBe(201);
    return ((await res.json()) as { token: string }).token;
  }

  async function verifiedEventsFor(uploadId: string) {
    await waitForEventsSettled({
      jsm: system.infra.jsm,
      stream: system.infra.ns.stream('TRANSFER'),
      outboxes: [system.infra.database('transfer').db],
      timeoutMs: 30_000,
    });
    return (await streamMessages(system.infra.jsm, system.infra.ns.stream('TRANSFER'))).filter(
      (m) =>
        m.subject === system.infra.ns.subject('transfer.evt.upload.verified.v1') &&
        m.json<{ upload_id: string }>().upload_id === uploadId,
    );
  }

  it('resumes after a part is cut mid-stream: nothing corrupt kept, GET shows it missing, re-sending it completes', async () => {
    const w = await deviceWorld(system);
    const mcap = new Payload(12 * MiB, 'resume');
    const u = await openUpload(w, mcap);
    expect(u.parts!.map((p) => [p.file, p.part_number, p.size_bytes])).toEqual([
      ['mcap', 1, PART],
      ['mcap', 2, PART],
      ['mcap', 3, 2 * MiB],
    ]);
    await send(w, u, mcap, 1);
    await expect(send(w, u, mcap, 2, { cutAfterBytes: 1 * MiB })).rejects.toThrow(/connection cut/);
    await send(w, u, mcap, 3);
    const after = await w.uploader().get(u.id);
    expect(after.files[0]).toMatchObject({ received_parts: [1, 3], missing_parts: [2] });
    // Fresh targets are offered for the missing part only.
    expect(after.parts!.map((p) => p.part_number)).toEqual([2]);
    const resent = await w.uploader().sendMissing(u.id, { mcap: (s, l) => mcap.stream(s, l) });
    expect(resent.files[0]!.missing_parts).toEqual([]);
    expect((await w.uploader().complete(u.id)).status).toBe(202);
    const done = await w.uploader().waitForOutcome(u.id);
    expect(done.status).toBe('acknowledged');
    expect(done.episode_id).toBeTruthy();
  });

  it('forgets a part whose second send failed: GET shows it missing, its first ETag no longer confirms it, re-sending it completes', async () => {
    const w = await deviceWorld(system);
    const mcap = new Payload(12 * MiB, 'resend-fails');
    const u = await openUpload(w, mcap);
    const firstEtag = await send(w, u, mcap, 2);
    await send(w, u, mcap, 1);
    await send(w, u, mcap, 3);
    // Part 2 again, with an X-Part-Sha256 its bytes do not match: the store keeps no part 2 at all now.
    const t = target(u, 'mcap', 2);
    const res = await fetch(t.url, {
      method: 'PUT',
      headers: { 'content-length': String(t.size_bytes), 'x-part-sha256': 'f'.repeat(64) },
      body: await bytesOf(mcap.stream(PART, t.size_bytes)),
    });
    expect(res.status).toBe(400);
    const after = await w.uploader().get(u.id);
    expect(after.files[0]).toMatchObject({ received_parts: [1, 3], missing_parts: [2] });
    expect(after.parts!.map((p) => p.part_number)).toEqual([2]);
    await expect(w.uploader().confirm(u.id, t, firstEtag)).rejects.toMatchObject({
      status: 409,
      body: { code: 'invalid_state' },
    });
    await w.uploader().sendMissing(u.id, { mcap: (s, l) => mcap.stream(s, l) });
    expect((await w.uploader().complete(u.id)).status).toBe(202);
    const done = await w.uploader().waitForOutcome(u.id);
    expect(done.status).toBe('acknowledged');
  });

  it('builds the same object from parts sent out of order and twice', async () => {
    const w = await deviceWorld(system);
    const mcap = new Payload(12 * MiB, 'order');
    const u = await openUpload(w, mcap);
    for (const n of [3, 1, 2, 1, 3]) await send(w, u, mcap, n);
    await w.uploader().complete(u.id);
    const done = await w.uploader().waitForOutcome(u.id);
    expect(done.status).toBe('acknowledged'); // verification recomputed the whole-file sha256
    expect(done.files[0]!.sha256).toBe(await mcap.sha256());
  });

  describe('rejects, with the reason, creating nothing downstream', () => {
    async function expectRejected(w: DeviceWorld, u: Upload, reason: string) {
      expect((await w.uploader().complete(u.id)).status).toBe(202);
      const done = await w.uploader().waitForOutcome(u.id);
      expect(done).toMatchObject({ status: 'rejected', episode_id: null, rejection: { reason, by: 'transfer' } });
      expect((await verifiedEventsFor(u.id)).length).toBe(0);
      const episodes = await w.operator('GET', `/episodes?task_id=${u.task_id}`);
      expect(episodes.body.items).toEqual([]);
      expect((await w.operator('GET', `/tasks/${u.task_id}`)).body.status).toBe('uploading');
      return done;
    }

    it('a whole file whose sha256 is not the declared one', async () => {
      const w = await deviceWorld(system);
      const mcap = new Payload(6 * MiB, 'bad-sha');
      const u = await openUpload(w, mcap, { declaredSha: 'f'.repeat(64) });
      await w.uploader().sendMissing(u.id, { mcap: (s, l) => mcap.stream(s, l) });
      const done = await expectRejected(w, u, 'sha256_mismatch');
      expect(done.rejection!.detail).toMatch(/^mcap hashes to [0-9a-f]{64}; f{64} was declared$/);
      // The object verification assembled is deleted with the rejection, not kept forever.
      expect(await new LocalBlobStore({ root: system.blobDir }).stat(done.files[0]!.object_key)).toBeNull();
    });

    it('a part that never arrived', async () => {
      const w = await deviceWorld(system);
      const mcap = new Payload(12 * MiB, 'missing');
      const u = await openUpload(w, mcap);
      await send(w, u, mcap, 1);
      await send(w, u, mcap, 3);
      const done = await expectRejected(w, u, 'missing_part');
      expect(done.rejection!.detail).toBe('mcap is missing part(s) 2 of 3');
    });

    it('a sidecar that is not JSON', async () => {
      const w = await deviceWorld(system);
      const mcap = new Payload(1 * MiB, 'sidecar');
      const sidecar = Buffer.from('{"recording": not json');
      const u = await openUpload(w, mcap, { sidecar });
      await w.uploader().sendMissing(u.id, {
        mcap: (s, l) => mcap.stream(s, l),
        sidecar: (s, l) => Readable.from([sidecar.subarray(s, s + l)]),
      });
      const done = await expectRejected(w, u, 'sidecar_invalid');
      expect(done.rejection!.detail).toMatch(/^the sidecar is not JSON: /);
    });
  });

  it('verifies once and makes one episode when complete is sent 10 times at once and transfer is killed mid-verification', async () => {
    const w = await deviceWorld(system);
    const mcap = new Payload(6 * MiB, 'crash');
    const u = await openUpload(w, mcap);
    await w.uploader().sendMissing(u.id, { mcap: (s, l) => mcap.stream(s, l) });
    // This transfer SIGKILLs itself after verifying, before committing the verdict.
    await system.stop('transfer');
    await system.start(['transfer'], {
      env: { FERRY_FAULTS: 'transfer.after_verify', UPLOAD_PART_SIZE: String(PART) },
    });
    const doomed = system.processes.get('transfer')!;
    try {
      const answers = await Promise.all(Array.from({ length: 10 }, () => w.uploader().complete(u.id)));
      expect(answers.every((a) => a.body.id === u.id && a.body.status === 'verifying')).toBe(true);
      expect(await exitWithin(doomed)).toMatchObject({ signal: 'SIGKILL' });
      expect(doomed.raw.join('\n')).toMatch(/fault injected at transfer\.after_verify/);
      await system.start(['transfer'], { env: { UPLOAD_PART_SIZE: String(PART) } });
      const done = await w.uploader().waitForOutcome(u.id);
      expect(done.status).toBe('acknowledged');
      expect(await verifiedEventsFor(u.id)).toHaveLength(1);
      const episodes = await w.operator('GET', `/episodes?task_id=${u.task_id}`);
      expect(episodes.body.items.map((e: { id: string }) => e.id)).toEqual([done.episode_id]);
    } finally {
      await healthyTransferAfter(doomed);
    }
  });

  it('publishes one upload.verified when transfer dies after committing the verdict, before its ack, and the message comes again', async () => {
    const w = await deviceWorld(system);
    const mcap = new Payload(6 * MiB, 'redelivered');
    const u = await openUpload(w, mcap);
    await w.uploader().sendMissing(u.id, { mcap: (s, l) => mcap.stream(s, l) });
    // This transfer SIGKILLs itself right after its verifier first commits: the verdict, never acked.
    await system.stop('transfer');
    await system.start(['transfer'], {
      // Scoped to the verifier: transfer's other consumers (episode.created, upload.rejected of earlier
      // uploads) must not take the one kill.
      env: { FERRY_FAULTS: 'consumer.after_commit@transfer__verify-upload', UPLOAD_PART_SIZE: String(PART) },
    });
    const doomed = system.processes.get('transfer')!;
    try {
      expect((await w.uploader().complete(u.id)).status).toBe(202);
      expect(await exitWithin(doomed)).toMatchObject({ signal: 'SIGKILL' });
      expect(doomed.raw.join('\n')).toMatch(/fault injected at consumer\.after_commit@transfer__verify-upload/);
      // The verdict committed before the kill (read from the database: no transfer answers now).
      const { rows } = await sql<{ status: string }>`select status from uploads where id = ${u.id}`.execute(
        system.infra.database('transfer').db,
      );
      expect(rows).toEqual([{ status: 'verified' }]);
      await system.start(['transfer'], { env: { UPLOAD_PART_SIZE: String(PART) } });
      const restarted = system.processes.get('transfer')!;
      const done = await w.uploader().waitForOutcome(u.id);
      expect(done.status).toBe('acknowledged');
      // The unacked message comes back after its ack wait and is handled as a no-op.
      await waitFor(
        () =>
          restarted.lines.some(
            (l) => l.consumer === 'transfer__verify-upload' && l.msg === 'event handled' && Number(l.delivery) >= 2,
          ),
        { timeoutMs: 45_000, what: 'the redelivered upload.completed to be handled' },
      );
      expect(await verifiedEventsFor(u.id)).toHaveLength(1);
      const episodes = await w.operator('GET', `/episodes?task_id=${u.task_id}`);
      expect(episodes.body.items.map((e: { id: string }) => e.id)).toEqual([done.episode_id]);
    } finally {
      await healthyTransferAfter(doomed);
    }
  }, 120_000);

  it('fails the task when the device reports the upload failed', async () => {
    const w = await deviceWorld(system);
    const u = await openUpload(w, new Payload(1 * MiB, 'fail'));
    const failed = await w.device.api('POST', `/uploads/${u.id}/fail`, { reason: 'disk full' });
    expect(failed.status).toBe(200);
    expect(failed.body.status).toBe('failed');
    const task = await w.operator('GET', `/tasks/${u.task_id}`);
    expect(task.body).toMatchObject({ status: 'failed', error_message: 'upload failed: disk full' });
    expect(failed.body.task).toEqual({ failed: true, status: 'failed' });
  });

  it('fails the upload when the report is sent again after transfer died between production failing the task and its own commit', async () => {
    const w = await deviceWorld(system);
    const u = await openUpload(w, new Payload(1 * MiB, 'fail-crash'));
    // This transfer SIGKILLs itself once production has failed the task, before the upload's change commits.
    await system.stop('transfer');
    await system.start(['transfer'], {
      env: { FERRY_FAULTS: 'transfer.after_task_failed', UPLOAD_PART_SIZE: String(PART) },
    });
    const doomed = system.processes.get('transfer')!;
    try {
      const first = await w.device.api('POST', `/uploads/${u.id}/fail`, { reason: 'disk full' });
      expect(first.status).toBeGreaterThanOrEqual(500);
      expect(await exitWithin(doomed)).toMatchObject({ signal: 'SIGKILL' });
      expect((await w.operator('GET', `/tasks/${u.task_id}`)).body.status).toBe('failed');
      await system.start(['transfer'], { env: { UPLOAD_PART_SIZE: String(PART) } });
      expect((await w.uploader().get(u.id)).status).toBe('open');
      const again = await w.device.api('POST', `/uploads/${u.id}/fail`, { reason: 'disk full' });
      expect(again.status).toBe(200);
      expect(again.body).toMatchObject({ status: 'failed', task: { failed: true, status: 'failed' } });
    } finally {
      await healthyTransferAfter(doomed);
    }
  });

  it('fails the upload, drops its staged parts and leaves the task as it is when an operator cancelled the task first', async () => {
    const w = await deviceWorld(system);
    const taskId = w.taskIds[0]!;
    // Opened before the recording finished (the task is still pending, so the batch's cancel reaches it).
    const mcap = new Payload(12 * MiB, 'fail-cancelled');
    const files = [{ role: 'mcap' as const, size_bytes: mcap.size, sha256: await mcap.sha256() }];
    const { body: u } = await w.uploader().open(taskId, files);
    await send(w, u, mcap, 1);
    const { rows } = await sql<{ multipart_id: string }>`
      select multipart_id from upload_files where upload_id = ${u.id}`.execute(system.infra.database('transfer').db);
    const staged = path.join(system.blobDir, 'multipart', rows[0]!.multipart_id);
    expect(existsSync(staged)).toBe(true);
    expect((await w.operator('PATCH', `/batches/${w.batchId}`, { status: 'cancelled' })).status).toBe(200);
    expect((await w.operator('GET', `/tasks/${taskId}`)).body.status).toBe('cancelled');

    const failed = await w.device.api('POST', `/uploads/${u.id}/fail`, { reason: 'operator cancelled' });
    expect(failed.status).toBe(200);
    expect(failed.body).toMatchObject({
      status: 'failed',
      task: { failed: false, status: 'cancelled', detail: expect.stringMatching(/the task was cancelled/) },
    });
    expect(existsSync(staged)).toBe(false);
    expect((await w.operator('GET', `/tasks/${taskId}`)).body).toMatchObject({
      status: 'cancelled',
      error_message: null,
    });
    // Reporting it again answers the failed upload as it is.
    const again = await w.device.api('POST', `/uploads/${u.id}/fail`, { reason: 'operator cancelled' });
    expect(again.status).toBe(200);
    expect(again.body.status).toBe('failed');
    // Nothing is left open for the task; a new upload for it is refused by production (the task was cancelled).
    const reopened = await w.device.api('POST', '/uploads', {
      task_id: taskId,
      files: [{ role: 'mcap', size_bytes: 1, sha256: 'a'.repeat(64) }],
    });
    expect(reopened.status).toBe(409);
    expect(reopened.body).toMatchObject({ code: 'invalid_state', details: { current_status: 'cancelled' } });
  });

  describe('who may do what', () => {
    it('refuses device A an upload for device B’s task (403 before any byte) and B’s part URLs', async () => {
      const a = await deviceWorld(system);
      const b = await deviceWorld(system, { org: a.org });
      await b.device.api('POST', `/tasks/${b.taskIds[0]}/finish`, {});
      const refused = await a.device.api('POST', '/uploads', {
        task_id: b.taskIds[0],
        files: [{ role: 'mcap', size_bytes: 100, sha256: 'a'.repeat(64) }],
      });
      expect(refused.status).toBe(403);
      expect(refused.body.code).toBe('not_owner');
      const mcap = new Payload(1 * MiB, 'b');
      const bUpload = await openUpload(b, mcap);
      const t = target(bUpload, 'mcap', 1);
      // A's token on B's URL: refused before any byte is stored.
      await expect(a.uploader().putPart(t, mcap.stream(0, t.size_bytes))).rejects.toMatchObject({
        status: 403,
        body: { code: 'not_owner' },
      });
      expect((await b.uploader().get(bUpload.id)).files[0]!.received_parts).toEqual([]);
      // A cannot see B's upload either.
      expect((await a.device.api('GET', `/uploads/${bUpload.id}`)).status).toBe(404);
    });

    it('hands a device its own upload in flight back (200) and answers another device 409 conflict', async () => {
      const w = await deviceWorld(system);
      const u = await openUpload(w, new Payload(1 * MiB, 'own'));
      const again = await w.uploader().open(u.task_id, declared(u));
      expect(again.status).toBe(200);
      expect(again.body.id).toBe(u.id);
      // Another device of the organization.
      const other = await pairedDevice(w, `arm-${uuidv7().slice(-8)}`);
      const refused = await other('POST', '/uploads', { task_id: u.task_id, files: declared(u) });
      expect(refused.status).toBe(409);
      expect(refused.body.code).toBe('conflict');
      // The device deleted and registered again under the same device_id is another device: no hand-over.
      expect((await w.operator('DELETE', `/devices/${w.device.id}`)).status).toBe(204);
      const successor = await pairedDevice(w, w.device.device_id);
      const notHanded = await successor('POST', '/uploads', { task_id: u.task_id, files: declared(u) });
      expect(notHanded.status).toBe(409);
      expect(notHanded.body.code).toBe('conflict');
      expect(JSON.stringify(notHanded.body)).not.toContain(u.id);
    });

    it('gives a device registered again under a deleted one’s device_id no way into the old upload', async () => {
      const w = await deviceWorld(system);
      const mcap = new Payload(1 * MiB, 'predecessor');
      const u = await openUpload(w, mcap);
      expect((await w.operator('DELETE', `/devices/${w.device.id}`)).status).toBe(204);
      const token = await pairedDeviceToken(w, w.device.device_id);
      const successor = system.client(token);
      // It cannot read, list, fail or complete the predecessor's upload: to it, the upload is not there.
      expect((await successor('GET', `/uploads/${u.id}`)).status).toBe(404);
      expect((await successor('GET', '/uploads')).body.items).toEqual([]);
      expect((await successor('POST', `/uploads/${u.id}/fail`, { reason: 'not mine' })).status).toBe(404);
      expect((await successor('POST', `/uploads/${u.id}/complete`, {})).status).toBe(404);
      // Nor send bytes to it with its own token on the old part URL.
      const t = target(u, 'mcap', 1);
      await expect(w.uploader({ token }).putPart(t, mcap.stream(0, t.size_bytes))).rejects.toMatchObject({
        status: 403,
        body: { code: 'not_owner' },
      });
      // The upload is as the predecessor left it, and an operator still sees it.
      const seen = await w.operator('GET', `/uploads/${u.id}`);
      expect(seen.body).toMatchObject({ id: u.id, status: 'open' });
      expect(seen.body.files[0].received_parts).toEqual([]);
    });

    it('never hands a device another organization’s upload, even under the same device_id (422 naming body.task_id)', async () => {
      const deviceId = `arm-${uuidv7().slice(-8)}`;
      const a = await deviceWorld(system, { deviceId });
      const b = await deviceWorld(system, { deviceId }); // another organization, a device of the same name
      const u = await openUpload(a, new Payload(1 * MiB, 'org-a'));
      const res = await b.device.api('POST', '/uploads', { task_id: u.task_id, files: declared(u) });
      expect(res.status).toBe(422);
      expect(res.body).toMatchObject({
        code: 'reference_not_found',
        errors: [{ path: 'body.task_id', message: 'no such task in this organization' }],
      });
      expect(JSON.stringify(res.body)).not.toContain(u.id);
      // Nothing was opened for b, and a's upload is as it was.
      expect((await b.device.api('GET', '/uploads')).body.items).toEqual([]);
      expect(await a.uploader().get(u.id)).toMatchObject({ status: 'open', device_id: deviceId });
    });

    it('refuses a tampered part URL, one pointed at another part, and an outdated one with 403', async () => {
      const w = await deviceWorld(system);
      const mcap = new Payload(12 * MiB, 'tamper');
      const u = await openUpload(w, mcap);
      const t = target(u, 'mcap', 1);
      const url = new URL(t.url);
      const sig = url.searchParams.get('signature')!;
      const variants = {
        tampered: (() => {
          const v = new URL(url);
          v.searchParams.set('signature', `${sig.slice(0, -2)}${sig.endsWith('AA') ? 'BB' : 'AA'}`);
          return v;
        })(),
        'another part': new URL(url.toString().replace('/parts/mcap/1?', '/parts/mcap/2?')),
        'expiry moved back': (() => {
          const v = new URL(url);
          v.searchParams.set('expires', String(Math.floor(Date.now() / 1000) - 10));
          return v;
        })(),
      };
      for (const [what, v] of Object.entries(variants)) {
        const size = what === 'another part' ? PART : t.size_bytes;
        const res = await fetch(v, {
          method: 'PUT',
          headers: { 'content-length': String(size) },
          body: Buffer.alloc(size),
        });
        expect(res.status, what).toBe(403);
        expect(((await res.json()) as { code: string }).code, what).toBe('forbidden');
      }
      expect((await w.uploader().get(u.id)).files[0]!.received_parts).toEqual([]);
    });

    it('keeps users and devices to their own routes', async () => {
      const w = await deviceWorld(system);
      const asOperator = await w.operator('POST', '/uploads', {
        task_id: w.taskIds[0],
        files: [{ role: 'mcap', size_bytes: 1, sha256: 'a'.repeat(64) }],
      });
      expect(asOperator.status).toBe(403);
      expect((await w.device.api('GET', '/orders')).status).toBe(403);
      expect((await w.device.api('POST', '/devices', { device_id: 'x' })).status).toBe(403);
      // A device acts only as itself.
      const other = await w.device.api('POST', `/tasks/${w.taskIds[0]}/start`, { device_id: 'someone-else' });
      expect(other.status).toBe(403);
    });

    it('issues one device token when a pairing token is redeemed 10 times at once', async () => {
      const w = await deviceWorld(system);
      const pairing = await w.admin('POST', `/devices/${w.device.id}/pairing-tokens`, {});
      const results = await Promise.all(
        Array.from({ length: 10 }, () =>
          fetch(`${system.gatewayUrl}/api/v1/device-tokens`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ pairing_token: pairing.body.pairing_token }),
          }),
        ),
      );
      expect(results.map((r) => r.status).sort()).toEqual([201, ...Array(9).fill(401)]);
      const tokens = await w.operator('GET', `/devices/${w.device.id}/tokens`);
      expect(tokens.body.items).toHaveLength(2); // the world's own token and this one
    });

    it('stops honouring a revoked device token within the cache TTL (1.5 s here)', async () => {
      const TTL_MS = 1_500;
      const w = await deviceWorld(system);
      // The token's first use: the gateway caches it when transfer's answer comes back, so by this
      // request's end at the latest — and trusts it TTL_MS from then, not longer.
      expect((await w.device.api('GET', '/device/tasks')).status).toBe(200);
      const cachedBy = Date.now();
      const tokens = await w.operator('GET', `/devices/${w.device.id}/tokens`);
      expect((await w.operator('DELETE', `/devices/${w.device.id}/tokens/${tokens.body.items[0].id}`)).status).toBe(
        204,
      );
      // However long the revocation itself took on this machine, the first request once the TTL has run
      // out is refused: no allowance for speed in either direction.
      const wait = cachedBy + TTL_MS + 50 - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      expect((await w.device.api('GET', '/device/tasks')).status).toBe(401);
    });

    it('revokes every token of a device deleted, in the same transaction', async () => {
      const w = await deviceWorld(system);
      expect((await w.operator('DELETE', `/devices/${w.device.id}`)).status).toBe(204);
      // Stamped with one transaction's now(): the revocation and the delete committed together.
      const { rows } = await sql<{ deleted_at: Date; revoked_at: Date | null }>`
        select d.deleted_at, t.revoked_at from devices d join device_tokens t on t.device_ref = d.id
        where d.id = ${w.device.id}`.execute(system.infra.database('transfer').db);
      expect(rows).toHaveLength(1);
      expect(rows[0]!.revoked_at?.getTime()).toBe(rows[0]!.deleted_at.getTime());
      // A new device with the same device_id can be registered again.
      expect((await w.operator('POST', '/devices', { device_id: w.device.device_id })).status).toBe(201);
      const deleted = await w.operator('GET', `/devices/${w.device.id}`);
      expect(deleted.status).toBe(404);
      await new Promise((r) => setTimeout(r, 1_600)); // the gateway's token cache TTL (1.5 s)
      expect((await w.device.api('GET', '/device/tasks')).status).toBe(401);
    });
  });

  describe('one outcome per upload', () => {
    /** The messages of `type` about upload `uploadId` on `stream`, once nothing more can reach it. */
    async function eventsAbout(stream: 'TRANSFER' | 'PRODUCTION', type: string, uploadId: string) {
      await waitForEventsSettled({
        jsm: system.infra.jsm,
        stream: system.infra.ns.stream(stream),
        outboxes: [system.infra.database(stream === 'TRANSFER' ? 'transfer' : 'production').db],
        timeoutMs: 30_000,
      });
      return (await streamMessages(system.infra.jsm, system.infra.ns.stream(stream))).filter((m) => {
        if (m.subject !== system.infra.ns.subject(type)) return false;
        const body = m.json<{ upload_id?: string; upload?: { id: string } }>();
        return (body.upload_id ?? body.upload?.id) === uploadId;
      });
    }

    /**
     * Sessions waiting on `pid`'s locks, directly or behind another waiter: of several transactions queued on one
     * row lock, only the first waits on its holder; the rest wait on the first (pg_blocking_pids).
     */
    async function sessionsWaitingOn(db: Kysely<any>, pid: number): Promise<number> {
      const { rows } = await sql<{ n: number }>`
        with recursive waiting(pid) as (
          select ${pid}::int
          union
          select a.pid from pg_stat_activity a join waiting w on w.pid = any(pg_blocking_pids(a.pid))
        )
        select count(*)::int - 1 as n from waiting`.execute(db);
      return rows[0]!.n;
    }

    it('completes once when complete is sent 10 times at once: one upload.completed, answers 202 verifying or the state after it', async () => {
      const w = await deviceWorld(system);
      const mcap = new Payload(6 * MiB, 'complete-10');
      const u = await openUpload(w, mcap);
      await w.uploader().sendMissing(u.id, { mcap: (s, l) => mcap.stream(s, l) });
      // Each complete locks the upload row first: this transaction holds it until at least two of them are
      // waiting on it together, so the completes provably overlap rather than arriving one after another.
      const transferDb = system.infra.database('transfer').db;
      const holder = await transferDb.startTransaction().execute();
      let sent: Promise<Awaited<ReturnType<typeof w.device.api>>[]> | undefined;
      try {
        const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(holder);
        await sql`select id from uploads where id = ${u.id} for update`.execute(holder);
        sent = Promise.all(Array.from({ length: 10 }, () => w.device.api('POST', `/uploads/${u.id}/complete`)));
        await waitFor(async () => (await sessionsWaitingOn(transferDb, rows[0]!.pid)) >= 2, {
          timeoutMs: 30_000,
          what: 'two completes or more to wait on the upload row at once',
        });
      } finally {
        await holder.commit().execute();
      }
      const answers = await sent!;
      for (const a of answers) {
        expect(a.body.id).toBe(u.id);
        // The first to move it answers 202 verifying; the rest the current state: still verifying (202), or past
        // it (200) when verification was already done.
        if (a.status === 202) expect(a.body.status).toBe('verifying');
        else {
          expect(a.status).toBe(200);
          expect(['verified', 'acknowledged']).toContain(a.body.status);
        }
      }
      expect(answers.some((a) => a.status === 202)).toBe(true);
      // One transition open → verifying: every answer carries the same completion time.
      expect(new Set(answers.map((a) => a.body.completed_at)).size).toBe(1);
      const done = await w.uploader().waitForOutcome(u.id);
      expect(done).toMatchObject({ status: 'acknowledged', completed_at: answers[0]!.body.completed_at });
      expect(await eventsAbout('TRANSFER', 'transfer.evt.upload.completed.v1', u.id)).toHaveLength(1);
      expect(await eventsAbout('TRANSFER', 'transfer.evt.upload.verified.v1', u.id)).toHaveLength(1);
      expect(await eventsAbout('TRANSFER', 'transfer.evt.upload.acknowledged.v1', u.id)).toHaveLength(1);
      const episodes = await w.operator('GET', `/episodes?task_id=${u.task_id}`);
      expect(episodes.body.items.map((e: { id: string }) => e.id)).toEqual([done.episode_id]);
    });

    it('ends rejected by production, with its reason, and makes no episode when the task was cancelled after the upload opened', async () => {
      const w = await deviceWorld(system);
      const taskId = w.taskIds[0]!;
      const mcap = new Payload(1 * MiB, 'cancelled-before-episode');
      // Opened while the task is still pending, so the batch's cancel reaches it (an uploading task is left alone).
      const files = [{ role: 'mcap' as const, size_bytes: mcap.size, sha256: await mcap.sha256() }];
      const { body: u } = await w.uploader().open(taskId, files);
      await w.uploader().sendMissing(u.id, { mcap: (s, l) => mcap.stream(s, l) });
      expect((await w.operator('PATCH', `/batches/${w.batchId}`, { status: 'cancelled' })).status).toBe(200);
      expect((await w.operator('GET', `/tasks/${taskId}`)).body.status).toBe('cancelled');

      expect((await w.uploader().complete(u.id)).status).toBe(202);
      const done = await w.uploader().waitForOutcome(u.id);
      expect(done).toMatchObject({
        status: 'rejected',
        episode_id: null,
        rejection: { reason: 'task_cancelled', by: 'production', detail: `task ${taskId} was cancelled` },
      });
      // Transfer verified the bytes and said so once; production refused them, once.
      expect(await eventsAbout('TRANSFER', 'transfer.evt.upload.verified.v1', u.id)).toHaveLength(1);
      const refusals = await eventsAbout('PRODUCTION', 'production.evt.upload.rejected.v1', u.id);
      expect(refusals.map((m) => m.json<{ reason: string }>().reason)).toEqual(['task_cancelled']);
      expect(await eventsAbout('TRANSFER', 'transfer.evt.upload.rejected.v1', u.id)).toHaveLength(1);
      expect((await w.operator('GET', `/episodes?task_id=${taskId}`)).body.items).toEqual([]);
      expect((await w.operator('GET', `/tasks/${taskId}`)).body.status).toBe('cancelled');
      // What was stored of it is deleted with the rejection.
      expect(await new LocalBlobStore({ root: system.blobDir }).stat(done.files[0]!.object_key)).toBeNull();
    });
  });
});
