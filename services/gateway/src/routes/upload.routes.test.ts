import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { PartTarget, Upload } from '@ferry/contracts';
import {
  type BlobSource,
  BlobStorageError,
  InvalidBlobKeyError,
  InvalidBlobPartError,
  LocalBlobStore,
  MultipartBusyError,
  type PartReceipt,
  type WritePartOptions,
} from '@ferry/platform';
import { captureLogger } from '@ferry/platform/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DeviceWorld, deviceWorld } from '../../../../test/support/device-world.js';
import { inProcessGateway } from '../../../../test/support/gateway-app.js';
import { System } from '../../../../test/support/system.js';

/** The system's local store, whose next part write can be made to fail the way a store fails. */
class FailingStore extends LocalBlobStore {
  private failure: (() => Promise<never>) | undefined;

  failNextWrite(failure: () => Promise<never>): void {
    this.failure = failure;
  }

  override async writePart(
    key: string,
    multipartId: string,
    partNumber: number,
    source: BlobSource,
    options: WritePartOptions,
  ): Promise<PartReceipt> {
    const failure = this.failure;
    this.failure = undefined;
    if (failure) await failure();
    return super.writePart(key, multipartId, partNumber, source, options);
  }
}

const GENERIC = 'the object store failed to store the part; send it again later';

/**
 * The part PUT route in this process (the local store, as the gateway runs it) against real transfer
 * and production services: what a failed write answers, and what it leaves behind.
 */
describe('PUT /uploads/{id}/parts/{file}/{n}', () => {
  let system: System;
  let store: FailingStore;
  let gateway: ReturnType<typeof inProcessGateway>;
  const log = captureLogger('gateway-test');

  beforeAll(async () => {
    system = await System.create();
    await system.start(['production', 'transfer', 'gateway']);
    store = new FailingStore({ root: system.blobDir });
    gateway = inProcessGateway(system, { blobStore: store, logger: log.logger });
  }, 120_000);
  afterAll(() => system?.shutdown());

  /** A device's open upload of one 1 KiB part (opened through the real gateway). */
  async function openUpload(w: DeviceWorld, sha256 = 'a'.repeat(64)): Promise<Upload> {
    const taskId = w.taskIds[0]!;
    await w.device.api('POST', `/tasks/${taskId}/finish`, {});
    const opened = await w.uploader().open(taskId, [{ role: 'mcap', size_bytes: 1024, sha256 }]);
    expect(opened.status).toBe(201);
    return opened.body;
  }

  /** PUTs `bytes` to the part target through the in-process gateway (the signed URL authorizes it). */
  function put(t: PartTarget, bytes: Buffer): Promise<Response> {
    const url = new URL(t.url);
    return Promise.resolve(
      gateway.app.request(`${url.pathname}${url.search}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(bytes.length) },
        body: bytes,
      }),
    );
  }

  it('answers a store failure it does not recognise with a generic 502 storage_error naming no key, id, path or driver message', async () => {
    const w = await deviceWorld(system);
    const u = await openUpload(w);
    const t = u.parts![0]!;
    const key = u.files[0]!.object_key;
    const multipartId = 'mp-0123456789abcdef';
    const failures: Record<string, Error> = {
      key: new InvalidBlobKeyError(key, 'it is a prefix of other keys here'),
      part: new InvalidBlobPartError(`${key} refused`, 1),
      storage: new BlobStorageError('writePart', key, {
        cause: Object.assign(new Error(`EIO: i/o error, write '${system.blobDir}/multipart/${multipartId}/data'`), {
          code: 'EIO',
        }),
      }),
    };
    for (const [what, err] of Object.entries(failures)) {
      store.failNextWrite(() => Promise.reject(err));
      const res = await put(t, Buffer.alloc(1024));
      const text = await res.text();
      expect(res.status, what).toBe(502);
      expect(res.headers.get('retry-after'), what).toBe('5');
      expect(JSON.parse(text), what).toMatchObject({ code: 'storage_error', detail: GENERIC });
      for (const secret of [key, multipartId, system.blobDir, 'EIO']) {
        expect(text, `${what}: ${secret}`).not.toContain(secret);
      }
    }
  });

  it('answers a part PUT the store refuses as busy completing (MultipartBusyError) with 409 invalid_state, naming no key or id', async () => {
    const w = await deviceWorld(system);
    const u = await openUpload(w);
    const t = u.parts![0]!;
    const key = u.files[0]!.object_key;
    const multipartId = 'mp-0123456789abcdef';
    store.failNextWrite(() => Promise.reject(new MultipartBusyError(key, multipartId, 'it is being completed')));
    const res = await put(t, Buffer.alloc(1024));
    const text = await res.text();
    expect(res.status).toBe(409);
    expect(res.headers.get('retry-after')).toBeNull();
    expect(JSON.parse(text)).toMatchObject({ code: 'invalid_state', detail: 'the upload is being completed' });
    for (const secret of [key, multipartId]) expect(text).not.toContain(secret);
  });

  it('drops the record of a part sent before when sending it again fails, before answering', async () => {
    const w = await deviceWorld(system);
    const u = await openUpload(w);
    const t = u.parts![0]!;
    const first = await put(t, Buffer.alloc(1024));
    expect(first.status).toBe(200);
    expect((await w.uploader().get(u.id)).files[0]!.received_parts).toEqual([1]);
    store.failNextWrite(() =>
      Promise.reject(new BlobStorageError('writePart', t.url, { cause: new Error('ENOSPC: no space left') })),
    );
    const again = await put(t, Buffer.alloc(1024));
    expect(again.status).toBe(502);
    expect((await w.uploader().get(u.id)).files[0]).toMatchObject({ received_parts: [], missing_parts: [1] });
    // Sent once more, it is received again.
    expect((await put(t, Buffer.alloc(1024))).status).toBe(200);
    expect((await w.uploader().get(u.id)).files[0]!.received_parts).toEqual([1]);
  });

  it('still answers the storage problem when transfer cannot drop the part, and logs that it could not', async () => {
    const w = await deviceWorld(system);
    const u = await openUpload(w);
    const t = u.parts![0]!;
    // The store fails while transfer is gone: the drop cannot be asked for.
    store.failNextWrite(async () => {
      await system.stop('transfer');
      throw new BlobStorageError('writePart', t.url, { cause: new Error('EIO') });
    });
    try {
      const res = await put(t, Buffer.alloc(1024));
      expect(res.status).toBe(502);
      expect(await res.json()).toMatchObject({ code: 'storage_error', detail: GENERIC });
      expect(log.lines()).toContainEqual(
        expect.objectContaining({
          level: 'error',
          msg: 'could not drop the record of a part whose write failed',
          upload_id: u.id,
          file: 'mcap',
          part_number: 1,
        }),
      );
    } finally {
      await system.start(['transfer']);
    }
  });

  describe('a body that is not the part’s exact size', () => {
    const part = Buffer.alloc(1024, 0x5a);
    const partSha = createHash('sha256').update(part).digest('hex');

    /** PUTs `body` through the in-process gateway, saying whatever Content-Length `length` says. */
    function putWithLength(t: PartTarget, body: Buffer, length: number): Promise<Response> {
      const url = new URL(t.url);
      return Promise.resolve(
        gateway.app.request(`${url.pathname}${url.search}`, {
          method: 'PUT',
          headers: { 'content-type': 'application/octet-stream', 'content-length': String(length) },
          body,
        }),
      );
    }

    async function expectRefused(res: Response, path: string, detail: RegExp) {
      expect(res.status).toBe(400);
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      const problem = (await res.json()) as { errors: unknown[] };
      expect(problem).toMatchObject({ code: 'validation_failed', detail: expect.stringMatching(detail) });
      expect(problem.errors).toContainEqual(expect.objectContaining({ path }));
    }

    /** The part shows missing, and the right bytes sent now make an upload that verifies: nothing corrupt was kept. */
    async function expectMissingThenWhole(w: DeviceWorld, u: Upload, t: PartTarget) {
      expect((await w.uploader().get(u.id)).files[0]).toMatchObject({ received_parts: [], missing_parts: [1] });
      expect((await put(t, part)).status).toBe(200);
      expect((await w.uploader().complete(u.id)).status).toBe(202);
      const done = await w.uploader().waitForOutcome(u.id, { timeoutMs: 30_000 });
      expect(done).toMatchObject({ status: 'acknowledged', rejection: null });
    }

    it('refuses a body shorter than its Content-Length with 400 and keeps no part', async () => {
      const w = await deviceWorld(system);
      const u = await openUpload(w, partSha);
      const t = u.parts![0]!;
      await expectRefused(await putWithLength(t, part.subarray(0, 512), 1024), 'body', /body ended after 512/);
      await expectMissingThenWhole(w, u, t);
    });

    it('refuses a body longer than its Content-Length with 400 and keeps no part', async () => {
      const w = await deviceWorld(system);
      const u = await openUpload(w, partSha);
      const t = u.parts![0]!;
      await expectRefused(await putWithLength(t, Buffer.concat([part, part]), 1024), 'body', /more arrived/);
      await expectMissingThenWhole(w, u, t);
    });

    it('refuses a Content-Length that is not the part’s size before reading a byte, leaving a part received before as it was', async () => {
      const w = await deviceWorld(system);
      const u = await openUpload(w, partSha);
      const t = u.parts![0]!;
      for (const length of [512, 2048]) {
        const res = await putWithLength(t, Buffer.alloc(length, 0xff), length);
        await expectRefused(res, 'header.content-length', /part 1 of mcap is exactly 1024 bytes/);
      }
      expect((await w.uploader().get(u.id)).files[0]!.missing_parts).toEqual([1]);
      expect((await put(t, part)).status).toBe(200);
      // Refused on its length alone, a resend of different bytes does not touch the part received.
      await expectRefused(await putWithLength(t, Buffer.alloc(512, 0xff), 512), 'header.content-length', /1024/);
      expect((await w.uploader().get(u.id)).files[0]!.received_parts).toEqual([1]);
      expect((await w.uploader().complete(u.id)).status).toBe(202);
      expect((await w.uploader().waitForOutcome(u.id, { timeoutMs: 30_000 })).status).toBe('acknowledged');
    });

    it('refuses a chunked body (no Content-Length) sent to the real gateway with 400 and keeps no part', async () => {
      const w = await deviceWorld(system);
      const u = await openUpload(w, partSha);
      const t = u.parts![0]!;
      const res = await fetch(t.url, {
        method: 'PUT',
        headers: { 'content-type': 'application/octet-stream' },
        body: Readable.toWeb(Readable.from([part.subarray(0, 512), part.subarray(512)])) as ReadableStream,
        duplex: 'half',
      } as RequestInit);
      await expectRefused(res, 'header.content-length', /Content-Length \(no chunked encoding\)/);
      await expectMissingThenWhole(w, u, t);
    });
  });
});
