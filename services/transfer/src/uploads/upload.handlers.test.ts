import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { MIN_PART_SIZE } from '@ferry/platform';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TransferFixture, transferFixture } from '../testing/transfer-fixture.js';

/** What transfer does with production's answer to a verified upload. */
describe('upload handlers', () => {
  let f: TransferFixture;
  beforeAll(async () => {
    f = await transferFixture();
  });
  afterAll(() => f?.cleanup());

  it('rejects a verified upload production refused and deletes its stored object', async () => {
    const { upload, key, multipartId } = await f.completedUpload(randomBytes(MIN_PART_SIZE + 10));
    await f.verifier.verify(upload.id);
    expect((await f.repository.find(f.db, upload.id))!.status).toBe('verified');
    expect(await f.blob.stat(key)).not.toBeNull();
    const refusal = {
      upload_id: upload.id,
      organization_id: upload.organization_id,
      task_id: upload.task_id,
      device_id: upload.device_id,
      reason: 'task_cancelled' as const,
      detail: 'the task was cancelled',
    };
    await f.tx((trx) => f.handlers.onUploadRejected(refusal, { trx } as never));
    expect(await f.repository.find(f.db, upload.id)).toMatchObject({
      status: 'rejected',
      rejection_reason: 'task_cancelled',
      rejected_by: 'production',
    });
    expect(await f.blob.stat(key)).toBeNull();
    expect(existsSync(path.join(f.blobDir, 'multipart', multipartId))).toBe(false);
    // The event again (a redelivery): nothing more to do, nothing fails.
    await f.tx((trx) => f.handlers.onUploadRejected(refusal, { trx } as never));
    expect((await f.repository.find(f.db, upload.id))!.status).toBe('rejected');
  });
});
