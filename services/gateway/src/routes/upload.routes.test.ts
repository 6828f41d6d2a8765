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
 * and production services: what a failed write answers.
 */
describe('PUT /uploads/{id}/parts/{file}/{n}', () => {
  let system: System;
  let store: FailingStore;
  let gateway: ReturnType<typeof inProcessGateway>;

  beforeAll(async () => {
    system = await System.create();
    await system.start(['production', 'transfer', 'gateway']);
    store = new FailingStore({ root: system.blobDir });
    gateway = inProcessGateway(system, { blobStore: store });
  }, 120_000);
  afterAll(() => system?.shutdown());

  /** A device's open upload of one 1 KiB part (opened through the real gateway). */
  async function openUpload(w: DeviceWorld): Promise<Upload> {
    const taskId = w.taskIds[0]!;
    await w.device.api('POST', `/tasks/${taskId}/finish`, {});
    const opened = await w.uploader().open(taskId, [{ role: 'mcap', size_bytes: 1024, sha256: 'a'.repeat(64) }]);
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
      busy: new MultipartBusyError(key, multipartId, 'a part is still being written'),
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
});
