import 'reflect-metadata';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { Actor, Upload } from '@ferry/contracts';
import {
  type BlobStore,
  createMetrics,
  inTransaction,
  LocalBlobStore,
  MIN_PART_SIZE,
  Outbox,
  PlatformModule,
  RpcClient,
} from '@ferry/platform';
import { silentLogger, TestInfra } from '@ferry/platform/testing';
import { Module, type Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { Kysely, Transaction } from 'kysely';
import { v7 as uuidv7 } from 'uuid';
import type { TransferDB } from '../database.js';
import { DeviceService } from '../devices/device.service.js';
import type { TransferConfig } from '../manifest.js';
import { TRANSFER_MIGRATIONS } from '../migrations.js';
import { TRANSFER_PROVIDERS } from '../transfer.module.js';
import { UploadHandlers } from '../uploads/upload.handlers.js';
import { UploadHousekeeper } from '../uploads/upload.housekeeper.js';
import { UploadRepository } from '../uploads/upload.repository.js';
import { partSizeOf, UploadService } from '../uploads/upload.service.js';
import { UploadVerifier } from '../uploads/upload.verifier.js';

export interface TransferFixtureOptions {
  /** The blob store over `root` (a fresh temporary directory). Default a LocalBlobStore. */
  blobStore?: (root: string) => BlobStore;
}

/**
 * The transfer services, resolved through Nest's DI exactly as the service wires them, on a migrated
 * test schema and provisioned streams of their own, with a local blob store in a temporary directory.
 * No production service: uploads are opened here directly (production's eligibility check is its own
 * service's business), parts are written and recorded the way the gateway does it.
 */
export async function transferFixture(options: TransferFixtureOptions = {}) {
  const infra = await TestInfra.create({ services: [{ name: 'transfer', migrations: TRANSFER_MIGRATIONS }] });
  const { db } = infra.database<TransferDB>('transfer', { max: 10 });
  const blobDir = mkdtempSync(path.join(tmpdir(), `ferry-transfer-${infra.ns.prefix}-`));
  const blob = options.blobStore?.(blobDir) ?? new LocalBlobStore({ root: blobDir });
  const logger = silentLogger();
  const config = {
    UPLOAD_SIGNING_SECRET: `fixture-secret-${'z'.repeat(40)}`,
    UPLOAD_PART_SIZE: MIN_PART_SIZE,
    UPLOAD_URL_TTL_SECONDS: 3600,
  } as TransferConfig;

  // No housekeeper: its sweeps (expiry, republication) are not what these tests look at.
  @Module({ providers: [...TRANSFER_PROVIDERS.filter((p) => p !== UploadHousekeeper), UploadHandlers] })
  class FixtureModule {}
  const app = await NestFactory.createApplicationContext(
    {
      module: class FixtureRoot {},
      imports: [
        PlatformModule.forRoot({
          db,
          outbox: new Outbox(infra.ns),
          ns: infra.ns,
          logger,
          config,
          metrics: createMetrics('transfer-fixture'),
          rpcClient: new RpcClient({ nc: infra.nc, ns: infra.ns, logger }),
          blobStore: blob,
        }),
        FixtureModule,
      ],
    },
    { logger: false },
  );
  const get = <T>(type: Type<T>) => app.get(type);
  const devices = get(DeviceService);
  const uploads = get(UploadService);
  const repository = get(UploadRepository);

  const fixture = {
    infra,
    db: db as Kysely<TransferDB>,
    blob,
    blobDir,
    devices,
    uploads,
    repository,
    verifier: get(UploadVerifier),
    handlers: get(UploadHandlers),
    tx<T>(fn: (trx: Transaction<TransferDB>) => Promise<T>): Promise<T> {
      return inTransaction(db, fn);
    },
    async outboxEvents(type?: string): Promise<{ id: string; event_type: string; payload: any }[]> {
      let q = db.selectFrom('outbox').select(['id', 'event_type', 'payload']).orderBy('created_at').orderBy('id');
      if (type) q = q.where('event_type', '=', type);
      return q.execute() as Promise<{ id: string; event_type: string; payload: any }[]>;
    },
    /** The actor of a device token for the device `id` (paired, as a gateway would authenticate it). */
    async deviceActor(admin: Actor, id: string): Promise<Actor> {
      const { pairing_token } = await fixture.tx((trx) => devices.createPairingToken(admin, id, 600, trx));
      const issued = await fixture.tx((trx) => devices.redeem(pairing_token, undefined, trx));
      return {
        kind: 'device',
        sub: issued.device.device_id,
        org: issued.device.organization_id,
        role: null,
        device: { id: issued.device.id, token_id: issued.token_id },
      };
    },
    /**
     * A registered device with an open upload of `mcap` for a new task, whose parts (all but `skipParts`)
     * were stored and recorded.
     */
    async openUpload(mcap: Buffer, opts: { declaredSha?: string; skipParts?: number[] } = {}) {
      const org = uuidv7();
      const deviceId = `arm-${uuidv7().slice(-8)}`;
      const admin: Actor = { kind: 'user', sub: 'admin-test', org, role: 'admin' };
      const device = await fixture.tx((trx) =>
        devices.create(admin, { device_id: deviceId, expected_topics: [], metadata: {} }, trx),
      );
      const actor = await fixture.deviceActor(admin, device.id);
      const id = uuidv7();
      const taskId = uuidv7();
      const key = `${org}/${device.id}/${taskId}/${id}.mcap`;
      const { multipartId } = await blob.createMultipart(key, { partSize: config.UPLOAD_PART_SIZE });
      const partCount = Math.ceil(mcap.length / config.UPLOAD_PART_SIZE);
      await fixture.tx(async (trx) => {
        await repository.insertIfNoneLive(trx, {
          id,
          organization_id: org,
          device_ref: device.id,
          device_id: deviceId,
          task_id: taskId,
          part_size: config.UPLOAD_PART_SIZE,
        });
        await repository.insertFiles(trx, [
          {
            upload_id: id,
            role: 'mcap',
            object_key: key,
            size_bytes: mcap.length,
            sha256: opts.declaredSha ?? sha256(mcap),
            multipart_id: multipartId,
            part_count: partCount,
          },
        ]);
      });
      for (let n = 1; n <= partCount; n++) {
        if (opts.skipParts?.includes(n)) continue;
        const start = (n - 1) * config.UPLOAD_PART_SIZE;
        const bytes = mcap.subarray(start, start + partSizeOf(mcap.length, config.UPLOAD_PART_SIZE, n));
        const receipt = await blob.writePart(key, multipartId, n, Readable.from([bytes]), { size: bytes.length });
        await fixture.tx((trx) =>
          uploads.recordPart(
            {
              upload_id: id,
              file: 'mcap',
              part_number: n,
              size_bytes: receipt.size,
              sha256: receipt.sha256,
              etag: receipt.etag,
            },
            trx,
          ),
        );
      }
      return { id, actor, key, multipartId };
    },
    /** As `openUpload`, then completed: `verifying`, its `upload.completed` event in the outbox. */
    async completedUpload(mcap: Buffer, opts: { declaredSha?: string; skipParts?: number[] } = {}) {
      const { id, actor, key, multipartId } = await fixture.openUpload(mcap, opts);
      const upload: Upload = await fixture.tx((trx) => uploads.complete(actor, id, trx));
      return { upload, actor, key, multipartId };
    },
    async cleanup() {
      await app.close();
      await infra.cleanup();
      rmSync(blobDir, { recursive: true, force: true });
    },
  };
  return fixture;
}

export type TransferFixture = Awaited<ReturnType<typeof transferFixture>>;

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}
