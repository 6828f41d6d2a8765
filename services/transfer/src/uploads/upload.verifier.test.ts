import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { HEADERS, transferConsumers, type Upload, uploadEvents, uploadLifecycleEvents } from '@ferry/contracts';
import { type BlobWriteResult, InboxConsumer, LocalBlobStore, MIN_PART_SIZE, toNatsHeaders } from '@ferry/platform';
import { silentLogger, waitFor, waitForConsumerDrained } from '@ferry/platform/testing';
import { sql } from 'kysely';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type TransferFixture, transferFixture } from '../testing/transfer-fixture.js';

/** A local store whose whole-file digest can be held at the door, to look at the world mid-hash. */
class GatedStore extends LocalBlobStore {
  private gate: { entered: () => void; released: Promise<void> } | undefined;
  private readonly releases: (() => void)[] = [];
  /** Keys whose whole-file digest was taken, in order. */
  readonly digested: string[] = [];

  /** Lets every held digest go (after a failed test, so its consumer can stop). */
  releaseAll(): void {
    this.gate = undefined;
    for (const release of this.releases.splice(0)) release();
  }

  /** Holds the next digest until `release()`; resolves `entered` once it is waiting. */
  holdNextDigest(): { entered: Promise<void>; release: () => void } {
    let release!: () => void;
    let entered!: () => void;
    const enteredP = new Promise<void>((r) => {
      entered = r;
    });
    const released = new Promise<void>((r) => {
      release = r;
    });
    this.gate = { entered, released };
    this.releases.push(release);
    return { entered: enteredP, release };
  }

  override async digest(key: string): Promise<BlobWriteResult> {
    this.digested.push(key);
    const gate = this.gate;
    this.gate = undefined;
    if (gate) {
      gate.entered();
      await gate.released;
    }
    return super.digest(key);
  }
}

/**
 * Verification through transfer's real consumer definition and runner: the hash runs with no
 * transaction and no lock, and the verdict is a compare-and-set, so redeliveries and racing replicas
 * publish one verdict.
 */
describe('upload verification', () => {
  let f: TransferFixture;
  let store: GatedStore;
  const running: InboxConsumer[] = [];

  beforeAll(async () => {
    f = await transferFixture({
      blobStore: (root) => {
        store = new GatedStore({ root });
        return store;
      },
    });
  });
  afterEach(async () => {
    store.releaseAll();
    await Promise.all(running.splice(0).map((c) => c.stop()));
  });
  afterAll(() => f?.cleanup());

  /** A replica of the verify-upload consumer, as the service runs it, with a pool of its own. */
  async function replica(outcomes: string[] = []): Promise<InboxConsumer> {
    const c = new InboxConsumer({
      def: transferConsumers.verifyUpload,
      db: f.infra.database('transfer', { max: 4 }).db,
      js: f.infra.js,
      ns: f.infra.ns,
      logger: silentLogger(),
      retryScheduleMs: [100],
      handler: (payload) => f.handlers.onCompleted(payload as never),
    });
    const handle = c.handle.bind(c);
    c.handle = async (msg) => {
      const outcome = await handle(msg);
      outcomes.push(outcome);
      return outcome;
    };
    running.push(c);
    await c.start();
    return c;
  }

  /** `upload.completed` on the stream, as the outbox relay publishes it (`msgId` differs for a republish). */
  async function publishCompleted(upload: Upload, msgId = upload.id) {
    const type = uploadLifecycleEvents.completed.type;
    await f.infra.js.publish(f.infra.ns.subject(type), JSON.stringify({ upload }), {
      msgID: msgId,
      headers: toNatsHeaders({ [HEADERS.eventId]: `completed-${upload.id}`, [HEADERS.eventType]: type }),
    });
  }

  async function drained() {
    await waitForConsumerDrained({
      jsm: f.infra.jsm,
      stream: f.infra.ns.stream('TRANSFER'),
      durable: transferConsumers.verifyUpload.durable,
      timeoutMs: 20_000,
    });
  }

  const statusOf = async (id: string) => (await f.repository.find(f.db, id))!.status;
  const eventsFor = async (type: string, uploadId: string) =>
    (await f.outboxEvents(type)).filter((e) => (e.payload.upload_id ?? e.payload.upload?.id) === uploadId);

  it('hashes with no transaction holding the upload, then records verified with one upload.verified', async () => {
    const mcap = randomBytes(MIN_PART_SIZE + 1024);
    const { upload } = await f.completedUpload(mcap);
    const held = store.holdNextDigest();
    await replica();
    await publishCompleted(upload);
    await held.entered;
    // Mid-hash: the upload row is free (the device's fail or a sweep would not wait for the hash) …
    const locked = await f
      .tx(async (trx) => {
        await sql`set local lock_timeout = '1s'`.execute(trx);
        return sql`select id from uploads where id = ${upload.id} for update nowait`.execute(trx);
      })
      .then(
        (r) => r.rows.length,
        (err: Error) => err.message,
      );
    expect(locked).toBe(1);
    // … and no connection sits idle inside a transaction waiting for it.
    const { rows } = await sql<{ n: number }>`
      select count(*)::int as n from pg_stat_activity
      where application_name = ${`test-${f.infra.ns.prefix}`} and state like 'idle in transaction%'`.execute(f.db);
    expect(rows[0]!.n).toBe(0);
    expect(await statusOf(upload.id)).toBe('verifying');
    held.release();
    await drained();
    expect(await statusOf(upload.id)).toBe('verified');
    const verified = await eventsFor(uploadEvents.verified.type, upload.id);
    expect(verified.map((e) => e.id)).toEqual([upload.id]); // the event id is the upload id
  });

  it('publishes one upload.verified however often the event arrives (three copies, two replicas consuming), and again after the verdict', async () => {
    const { upload } = await f.completedUpload(randomBytes(2 * MIN_PART_SIZE + 7));
    await Promise.all([replica(), replica()]);
    // Three copies of the one event (a republish after the dedup window differs in Nats-Msg-Id only).
    await Promise.all([
      publishCompleted(upload),
      publishCompleted(upload, `${upload.id}-again`),
      publishCompleted(upload, `${upload.id}-third`),
    ]);
    await drained();
    expect(await statusOf(upload.id)).toBe('verified');
    // Once decided, another delivery is a no-op.
    await publishCompleted(upload, `${upload.id}-late`);
    await drained();
    expect(await eventsFor(uploadEvents.verified.type, upload.id)).toHaveLength(1);
    expect(await eventsFor(uploadLifecycleEvents.rejected.type, upload.id)).toHaveLength(0);
  });

  it('records one verdict when a second verification overtakes one still hashing: the late one loses the compare-and-set and drops its verdict', async () => {
    const { upload } = await f.completedUpload(randomBytes(MIN_PART_SIZE + 5));
    const outcomes: string[] = [];
    await Promise.all([replica(outcomes), replica(outcomes)]);
    const held = store.holdNextDigest();
    await publishCompleted(upload);
    await held.entered; // the first verification is mid-hash, the upload still verifying
    await publishCompleted(upload, `${upload.id}-again`);
    await waitFor(async () => (await statusOf(upload.id)) === 'verified', {
      timeoutMs: 20_000,
      what: 'the second verification to record its verdict',
    });
    const first = (await f.repository.find(f.db, upload.id))!;
    held.release();
    await drained();
    // The race happened: both verifications read the upload as verifying and hashed it.
    expect(store.digested.filter((k) => k === upload.files[0]!.object_key)).toHaveLength(2);
    // The late one changed nothing and failed nothing: a quiet no-op, not a retry on a duplicate event id.
    expect(outcomes).toEqual(['handled', 'handled']);
    expect(await f.repository.find(f.db, upload.id)).toMatchObject({
      status: 'verified',
      verified_at: first.verified_at,
    });
    expect((await eventsFor(uploadEvents.verified.type, upload.id)).map((e) => e.id)).toEqual([upload.id]);
  });

  it('records nothing when the upload failed while it was being hashed', async () => {
    const { upload } = await f.completedUpload(randomBytes(1024));
    const held = store.holdNextDigest();
    await replica();
    await publishCompleted(upload);
    await held.entered;
    // What the device's `fail` does to the row, without asking production about the task.
    const failed = await f.tx(async (trx) => {
      await sql`set local lock_timeout = '2s'`.execute(trx);
      return f.repository.transition(trx, upload.id, ['open', 'verifying'], {
        status: 'failed',
        failure_reason: 'gave up',
      });
    });
    expect(failed?.status).toBe('failed');
    held.release();
    await drained();
    expect(await statusOf(upload.id)).toBe('failed');
    expect(await eventsFor(uploadEvents.verified.type, upload.id)).toHaveLength(0);
    expect(await eventsFor(uploadLifecycleEvents.rejected.type, upload.id)).toHaveLength(0);
  });

  it('rejects once, with the reason, and drops the staged parts', async () => {
    const { upload, multipartId } = await f.completedUpload(randomBytes(2 * MIN_PART_SIZE), { skipParts: [2] });
    await Promise.all([replica(), replica()]);
    await Promise.all([publishCompleted(upload), publishCompleted(upload, `${upload.id}-again`)]);
    await drained();
    const row = (await f.repository.find(f.db, upload.id))!;
    expect(row).toMatchObject({
      status: 'rejected',
      rejection_reason: 'missing_part',
      rejection_detail: 'mcap is missing part(s) 2 of 2',
      rejected_by: 'transfer',
    });
    expect(await eventsFor(uploadLifecycleEvents.rejected.type, upload.id)).toHaveLength(1);
    expect(existsSync(path.join(f.blobDir, 'multipart', multipartId))).toBe(false);
  });

  it('deletes the object it assembled when the whole file does not hash to the declared sha256', async () => {
    const { upload, key } = await f.completedUpload(randomBytes(MIN_PART_SIZE + 3), { declaredSha: 'f'.repeat(64) });
    await f.verifier.verify(upload.id);
    expect(await f.repository.find(f.db, upload.id)).toMatchObject({
      status: 'rejected',
      rejection_reason: 'sha256_mismatch',
    });
    expect(await f.blob.stat(key)).toBeNull();
  });
});
