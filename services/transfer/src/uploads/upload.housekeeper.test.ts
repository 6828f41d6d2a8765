import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { uploadEvents, uploadLifecycleEvents } from '@ferry/contracts';
import { BlobStorageError, createMetrics, LocalBlobStore, MIN_PART_SIZE, Outbox } from '@ferry/platform';
import { captureLogger } from '@ferry/platform/testing';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TransferConfig } from '../manifest.js';
import { type TransferFixture, transferFixture } from '../testing/transfer-fixture.js';
import { UploadHousekeeper } from './upload.housekeeper.js';

/** A local store that fails to drop the staged parts of the keys it is told to, the way a store fails. */
class FlakyStore extends LocalBlobStore {
  readonly failing = new Set<string>();

  override async abortMultipart(key: string, multipartId: string): Promise<void> {
    if (this.failing.has(key))
      throw new BlobStorageError('abortMultipart', key, { cause: new Error('store unreachable') });
    return super.abortMultipart(key, multipartId);
  }
}

const IDLE_MS = 60_000;

describe('upload housekeeping', () => {
  let f: TransferFixture;
  let store: FlakyStore;
  beforeAll(async () => {
    f = await transferFixture({
      blobStore: (root) => {
        store = new FlakyStore({ root });
        return store;
      },
    });
  });
  afterAll(() => f?.cleanup());

  function housekeeper() {
    const log = captureLogger('transfer');
    const config = {
      UPLOAD_IDLE_TIMEOUT_MS: IDLE_MS,
      UPLOAD_ACK_TIMEOUT_MS: IDLE_MS,
      UPLOAD_MAX_REPUBLISH: 2,
      UPLOAD_SWEEP_INTERVAL_MS: IDLE_MS,
    } as TransferConfig;
    // Driven by sweep() only: its periodic task is never started.
    const keeper = new UploadHousekeeper(
      f.db,
      f.repository,
      f.uploads,
      new Outbox(f.infra.ns),
      config,
      log.logger,
      createMetrics('housekeeper-test'),
    );
    return { keeper, lines: log.lines };
  }

  const statusOf = async (id: string) => (await f.repository.find(f.db, id))!.status;

  it('expires the other idle uploads when the store fails for one, and that one at a later sweep', async () => {
    const stuck = await f.openUpload(randomBytes(MIN_PART_SIZE + 1));
    const fine = await f.openUpload(randomBytes(MIN_PART_SIZE + 2));
    store.failing.add(stuck.key);
    const { keeper, lines } = housekeeper();
    const later = new Date(Date.now() + 2 * IDLE_MS);

    expect((await keeper.sweep(later)).expired).toBe(1);
    expect(await statusOf(fine.id)).toBe('expired');
    expect(existsSync(path.join(f.blobDir, 'multipart', fine.multipartId))).toBe(false);
    expect(await statusOf(stuck.id)).toBe('open');
    expect(existsSync(path.join(f.blobDir, 'multipart', stuck.multipartId))).toBe(true);
    expect(lines()).toContainEqual(
      expect.objectContaining({
        upload_id: stuck.id,
        msg: 'could not expire an idle upload; it stays open until the next sweep',
      }),
    );
    const expiredEvents = (await f.outboxEvents(uploadLifecycleEvents.expired.type)).map((e) => e.payload.upload.id);
    expect(expiredEvents).toContain(fine.id);
    expect(expiredEvents).not.toContain(stuck.id);

    // The store recovers: the next sweep expires it.
    store.failing.delete(stuck.key);
    expect((await keeper.sweep(later)).expired).toBe(1);
    expect(await statusOf(stuck.id)).toBe('expired');
    expect(existsSync(path.join(f.blobDir, 'multipart', stuck.multipartId))).toBe(false);
  });
  it('republishes an unacknowledged upload.verified under its own id at most UPLOAD_MAX_REPUBLISH times, however many sweeps follow', async () => {
    const { upload } = await f.completedUpload(randomBytes(1024));
    await f.verifier.verify(upload.id);
    const verifiedAt = (await f.repository.find(f.db, upload.id))!.verified_at!.getTime();
    // What the relay does once it has published the event.
    const published = () => sql`update outbox set published_at = now() where id = ${upload.id}`.execute(f.db);
    await published();
    const { keeper, lines } = housekeeper();
    const counts: number[] = [];
    // Sweeps one ack timeout apart (UPLOAD_ACK_TIMEOUT_MS = IDLE_MS here), production never answering.
    for (let n = 1; n <= 5; n++) {
      await keeper.sweep(new Date(verifiedAt + n * (IDLE_MS + 1)));
      counts.push((await f.repository.find(f.db, upload.id))!.republish_count);
      const { rows } = await sql<{ queued: boolean }>`
        select published_at is null as queued from outbox where id = ${upload.id}`.execute(f.db);
      // Queued again for the relay on a republishing sweep only; then the relay publishes it.
      expect(rows, `sweep ${n}`).toEqual([{ queued: n <= 2 }]);
      await published();
    }
    expect(counts).toEqual([1, 2, 2, 2, 2]);
    // The one outbox row of the event, keyed by the upload id: republished, never written twice.
    expect((await f.outboxEvents(uploadEvents.verified.type)).filter((e) => e.payload.upload_id === upload.id)).toEqual(
      [expect.objectContaining({ id: upload.id })],
    );
    const about = lines().filter((l) => l.upload_id === upload.id);
    expect(about.map((l) => l.msg)).toEqual([
      'upload verified but not acknowledged; upload.verified published again',
      'upload.verified republished for the last time; production has still not acknowledged it',
    ]);
  });
});
