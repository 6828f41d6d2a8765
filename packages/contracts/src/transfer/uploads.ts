import { z } from 'zod';
import { defineEvent } from '../messaging.js';
import { Timestamp, Uuid } from '../primitives.js';

const Sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'must be a lowercase hex sha256');

export const UploadedFile = z.object({
  /** Fixed when the upload opened; never re-derived (Keystone #83). */
  object_key: z.string().min(1).max(1024),
  size_bytes: z.number().int().min(0),
  sha256: Sha256,
});
export type UploadedFile = z.infer<typeof UploadedFile>;

/** What the recorder's sidecar says about the recording, as transfer read it. All optional. */
export const RecordingMetadata = z
  .object({
    duration_sec: z.number().min(0).optional(),
    message_count: z.number().int().min(0).optional(),
    topics: z.array(z.string()).max(1000).optional(),
    started_at: Timestamp.optional(),
    ended_at: Timestamp.optional(),
    recorder_version: z.string().max(200).optional(),
    /** Anything else from the sidecar, kept as-is. */
    extra: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();
export type RecordingMetadata = z.infer<typeof RecordingMetadata>;

export const uploadEvents = {
  verified: defineEvent({
    type: 'transfer.evt.upload.verified.v1',
    schema: z.object({
      upload_id: Uuid,
      organization_id: Uuid,
      task_id: Uuid,
      device_id: z.string().min(1).max(200),
      files: z.object({ mcap: UploadedFile, sidecar: UploadedFile.optional() }),
      recording: RecordingMetadata.nullable(),
      verified_at: Timestamp,
    }),
    description:
      'Every declared file of an upload arrived with its declared size and sha256. Production creates the episode ' +
      '(or rejects the upload). The event id is the upload id, so it is published once per upload.',
  }),
} as const;

export const transferEvents = { upload: uploadEvents } as const;
