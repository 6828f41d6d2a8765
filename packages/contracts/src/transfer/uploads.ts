import { z } from 'zod';
import { defineEvent, defineRpc } from '../messaging.js';
import { PageQuery, pageOf } from '../pagination.js';
import { commaList, Timestamp, Uuid } from '../primitives.js';
import { TaskStatus } from '../production/tasks.js';
import { UploadRejectionReason } from '../production/upload-rejections.js';
import { DeviceId } from '../production/workstations.js';

export const Sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'must be a lowercase hex sha256');

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

export const UPLOAD_FILE_ROLES = ['mcap', 'sidecar'] as const;
export const UploadFileRole = z.enum(UPLOAD_FILE_ROLES);
export type UploadFileRole = z.infer<typeof UploadFileRole>;

/** Largest sidecar transfer reads (DESIGN §6). */
export const MAX_SIDECAR_BYTES = 4 * 1024 * 1024;
/** Largest file an upload may declare (5 TiB, S3's object limit). */
export const MAX_UPLOAD_FILE_BYTES = 5 * 1024 ** 4;

/**
 * An upload's life: `open` (parts arriving) → `verifying` (completed; verification is durable work)
 * → `verified` (every byte checked; `upload.verified` published) → `acknowledged` (production created
 * the episode) — or `rejected` (by verification or by production, with a reason), `expired` (no part
 * for too long) or `failed` (the device gave up; the task failed).
 */
export const UploadStatus = z.enum(['open', 'verifying', 'verified', 'acknowledged', 'rejected', 'expired', 'failed']);
export type UploadStatus = z.infer<typeof UploadStatus>;

/** Why transfer refused an upload; production's reasons (task ownership, status) come through as they are. */
export const VerificationRejectionReason = z.enum([
  'missing_part',
  'size_mismatch',
  'sha256_mismatch',
  'sidecar_invalid',
  'sidecar_too_large',
]);
export const UploadRejection = z.object({
  reason: z.union([VerificationRejectionReason, UploadRejectionReason]),
  detail: z.string(),
  /** Who refused it: transfer's verification or production's episode creation. */
  by: z.enum(['transfer', 'production']),
});
export type UploadRejection = z.infer<typeof UploadRejection>;

export const DeclaredFile = z
  .object({
    role: UploadFileRole,
    size_bytes: z.number().int().min(1).max(MAX_UPLOAD_FILE_BYTES),
    sha256: Sha256,
  })
  .strict();

export const OpenUploadBody = z
  .object({
    task_id: Uuid,
    files: z
      .array(DeclaredFile)
      .min(1)
      .max(2)
      .refine((files) => files.some((f) => f.role === 'mcap'), 'an mcap file is required')
      .refine((files) => new Set(files.map((f) => f.role)).size === files.length, 'each role at most once')
      .refine(
        (files) => files.every((f) => f.role !== 'sidecar' || f.size_bytes <= MAX_SIDECAR_BYTES),
        `the sidecar is at most ${MAX_SIDECAR_BYTES} bytes`,
      ),
  })
  .strict()
  .meta({
    id: 'OpenUploadBody',
    description:
      'Declares the recording (an MCAP, optionally a JSON sidecar, each with its exact size and sha256). The device ' +
      'must own the task, which must be able to take an upload.',
  });
export type OpenUploadBody = z.infer<typeof OpenUploadBody>;

/** Where one part goes: opaque, signed, expiring. Relative URLs are relative to the API's base URL. */
export const PartTarget = z
  .object({
    file: UploadFileRole,
    part_number: z.number().int().min(1),
    /** Exact byte count to send (Content-Length). */
    size_bytes: z.number().int().min(1),
    method: z.literal('PUT'),
    url: z.string(),
    /** Headers the PUT must carry exactly (they may be part of the signature). */
    headers: z.record(z.string(), z.string()),
    expires_at: Timestamp,
  })
  .meta({ id: 'PartTarget' });
export type PartTarget = z.infer<typeof PartTarget>;

export const UploadFile = z
  .object({
    role: UploadFileRole,
    /** Fixed when the upload opened; never re-derived. */
    object_key: z.string(),
    size_bytes: z.number().int(),
    sha256: z.string(),
    part_count: z.number().int(),
    received_parts: z.array(z.number().int()),
    missing_parts: z.array(z.number().int()),
  })
  .meta({ id: 'UploadFile' });

export const Upload = z
  .object({
    id: Uuid,
    organization_id: Uuid,
    task_id: Uuid,
    device_id: z.string(),
    status: UploadStatus,
    /** Bytes per part (the last part of each file holds the rest). */
    part_size: z.number().int(),
    files: z.array(UploadFile),
    /** Targets for the parts still missing; present for the owning device while the upload is open. */
    parts: z.array(PartTarget).optional(),
    recording: RecordingMetadata.nullable(),
    rejection: UploadRejection.nullable(),
    episode_id: Uuid.nullable(),
    created_at: Timestamp,
    updated_at: Timestamp,
    completed_at: Timestamp.nullable(),
    verified_at: Timestamp.nullable(),
    acknowledged_at: Timestamp.nullable(),
  })
  .meta({ id: 'Upload', description: 'A recording on its way from a device: parts, verification, acknowledgement.' });
export type Upload = z.infer<typeof Upload>;

export const UploadIdParams = z.object({ id: Uuid }).strict();
export const UploadGetQuery = z
  .object({
    /** `missing` (default for the owning device): fresh part targets for the missing parts; `none`: no targets. */
    part_urls: z.enum(['missing', 'none']).optional(),
  })
  .strict();

export const PartParams = z
  .object({
    id: Uuid,
    file: UploadFileRole,
    n: z.coerce.number().int().min(1).max(10_000),
  })
  .strict();
/** The signature of a local part URL (issued by transfer; see PartTarget). */
export const PartSignatureQuery = z
  .object({
    expires: z.coerce.number().int().min(0).max(4_102_444_800),
    signature: z
      .string()
      .min(10)
      .max(200)
      .regex(/^[A-Za-z0-9_-]+$/),
  })
  .strict();

export const PartReceived = z
  .object({
    file: UploadFileRole,
    part_number: z.number().int(),
    size_bytes: z.number().int(),
    sha256: Sha256,
    etag: z.string(),
  })
  .meta({ id: 'PartReceived' });

/** A device confirms a part it PUT (with the ETag the store answered): needed for S3, harmless locally. */
export const PartReceiptBody = z
  .object({
    file: UploadFileRole,
    part_number: z.number().int().min(1).max(10_000),
    etag: z.string().min(1).max(200),
  })
  .strict()
  .meta({ id: 'PartReceiptBody' });
export type PartReceiptBody = z.infer<typeof PartReceiptBody>;

export const FailUploadBody = z
  .object({ reason: z.string().trim().min(1).max(2000) })
  .strict()
  .meta({ id: 'FailUploadBody' });

/**
 * What the device's report did to the task. The upload fails whatever production answers; the task fails only
 * where production lets it (the task recording or uploading). Where production refuses (the task's outcome is
 * decided otherwise: cancelled by an operator, completed, or it has not started recording), the task stays as it is.
 */
export const FailedUploadTask = z
  .object({
    /** true: the task is failed; false: production left it as it was. */
    failed: z.boolean(),
    /** The task's status after the report, when production told it. */
    status: TaskStatus.optional(),
    /** Why production left the task as it was. */
    detail: z.string().optional(),
  })
  .meta({ id: 'FailedUploadTask' });
export type FailedUploadTask = z.infer<typeof FailedUploadTask>;

/** The failed upload; `task` only in the answer to the report that failed it (a repeated report answers the upload). */
export const FailedUpload = Upload.extend({ task: FailedUploadTask.optional() }).meta({
  id: 'FailedUpload',
  description: 'The failed upload, and what the report did to its task.',
});
export type FailedUpload = z.infer<typeof FailedUpload>;

const uploadFilters = {
  task_id: Uuid.optional(),
  device_id: DeviceId.optional(),
  created_from: Timestamp.optional(),
  created_to: Timestamp.optional(),
};
export const UploadListQuery = PageQuery.extend({
  ...uploadFilters,
  status: commaList(UploadStatus).optional(),
}).strict();
export const UploadListFilter = PageQuery.extend({
  ...uploadFilters,
  status: z.array(UploadStatus).min(1).optional(),
}).strict();
export type UploadListFilter = z.infer<typeof UploadListFilter>;
export const UploadPage = pageOf(Upload).meta({ id: 'UploadPage' });

export const uploadRpc = {
  open: defineRpc({
    subject: 'transfer.rpc.upload.open',
    kind: 'command',
    request: OpenUploadBody,
    reply: z.object({ created: z.boolean(), upload: Upload }),
  }),
  get: defineRpc({
    subject: 'transfer.rpc.upload.get',
    kind: 'query',
    request: z.object({ id: Uuid, part_urls: z.enum(['missing', 'none']).optional() }),
    reply: Upload,
  }),
  list: defineRpc({
    subject: 'transfer.rpc.upload.list',
    kind: 'query',
    request: z.object({ query: UploadListFilter }),
    reply: UploadPage,
  }),
  /**
   * The gateway, before streaming a part: is this signed part URL valid, and where do the bytes go? When the
   * PUT carried a device token, the call's actor is that device, and it must own the upload.
   */
  authorizePart: defineRpc({
    subject: 'transfer.rpc.upload.authorize_part',
    kind: 'query',
    request: z.object({
      upload_id: Uuid,
      file: UploadFileRole,
      part_number: z.number().int().min(1),
      expires: z.number().int(),
      signature: z.string(),
      content_length: z.number().int().min(0),
    }),
    reply: z.object({
      object_key: z.string(),
      multipart_id: z.string(),
      size_bytes: z.number().int(),
    }),
  }),
  /** The gateway, after a part was stored: record it (a part sent again replaces the earlier one). */
  recordPart: defineRpc({
    subject: 'transfer.rpc.upload.record_part',
    kind: 'command',
    request: z.object({
      upload_id: Uuid,
      file: UploadFileRole,
      part_number: z.number().int().min(1),
      size_bytes: z.number().int(),
      sha256: Sha256,
      etag: z.string(),
    }),
    reply: PartReceived,
  }),
  /**
   * The gateway, after storing a part failed: forget the part. A failed write leaves no usable part in
   * the store (a part sent again overwrites the earlier bytes), so a record kept from an earlier send
   * would list the part received and let `complete` count a part with no bytes. Only an open upload's
   * parts are dropped; `dropped` says whether a record was there.
   */
  dropPart: defineRpc({
    subject: 'transfer.rpc.upload.drop_part',
    kind: 'command',
    request: z.object({
      upload_id: Uuid,
      file: UploadFileRole,
      part_number: z.number().int().min(1),
    }),
    reply: z.object({ dropped: z.boolean() }),
  }),
  receipt: defineRpc({
    subject: 'transfer.rpc.upload.receipt',
    kind: 'command',
    request: z.object({ id: Uuid, receipt: PartReceiptBody }),
    reply: Upload,
  }),
  complete: defineRpc({
    subject: 'transfer.rpc.upload.complete',
    kind: 'command',
    request: z.object({ id: Uuid }),
    reply: Upload,
  }),
  fail: defineRpc({
    subject: 'transfer.rpc.upload.fail',
    kind: 'command',
    request: z.object({ id: Uuid, reason: z.string().min(1).max(2000) }),
    reply: FailedUpload,
  }),
} as const;

export const uploadLifecycleEvents = {
  completed: defineEvent({
    type: 'transfer.evt.upload.completed.v1',
    schema: z.object({ upload: Upload }),
    description:
      'The device completed the upload; verification starts (transfer consumes this itself, so a crash resumes it).',
  }),
  rejected: defineEvent({
    type: 'transfer.evt.upload.rejected.v1',
    schema: z.object({ upload: Upload }),
    description:
      'Verification or production refused the upload (`upload.rejection.reason`); nothing goes downstream, and what ' +
      'was stored of it is deleted.',
  }),
  acknowledged: defineEvent({
    type: 'transfer.evt.upload.acknowledged.v1',
    schema: z.object({ upload: Upload }),
    description: 'Production created the episode for the upload (`upload.episode_id`), or refused it (`rejected`).',
  }),
  failed: defineEvent({
    type: 'transfer.evt.upload.failed.v1',
    schema: z.object({
      upload: Upload,
      reason: z.string(),
      /** Whether the task failed with it: false where production kept the task (cancelled, completed, not started). */
      task_failed: z.boolean().optional(),
    }),
    description:
      'The device reported the upload failed; the task failed with it unless production refused (`task_failed`).',
  }),
  expired: defineEvent({
    type: 'transfer.evt.upload.expired.v1',
    schema: z.object({ upload: Upload }),
    description: 'An open upload saw no part for too long; its parts were deleted.',
  }),
} as const;
