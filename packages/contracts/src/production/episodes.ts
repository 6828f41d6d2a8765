import { z } from 'zod';
import { defineEvent, defineRpc } from '../messaging.js';
import { PageQuery, pageOf } from '../pagination.js';
import { commaList, Timestamp, Uuid } from '../primitives.js';
import { RecordingMetadata, UploadedFile } from '../transfer/uploads.js';
import { UploadRejectionReason } from './upload-rejections.js';
import { DeviceId } from './workstations.js';

export { UploadRejectionReason } from './upload-rejections.js';

export const QaStatus = z.enum([
  'pending_qa',
  'qa_running',
  'approved',
  'failed',
  'needs_inspection',
  'inspector_approved',
  'rejected',
]);
export type QaStatus = z.infer<typeof QaStatus>;

export const EpisodeLabel = z
  .string()
  .min(1)
  .max(100)
  .regex(/^[a-z0-9][a-z0-9_:-]*$/, 'lowercase letters, digits and _ : - only');

export const Episode = z
  .object({
    id: Uuid,
    organization_id: Uuid,
    task_id: Uuid,
    batch_id: Uuid,
    order_id: Uuid,
    scene_id: Uuid,
    workstation_id: Uuid,
    device_id: z.string(),
    upload_id: Uuid,
    files: z.object({ mcap: UploadedFile, sidecar: UploadedFile.nullable() }),
    recording: RecordingMetadata.nullable(),
    /** Production's read copy; QA owns the status. */
    qa_status: QaStatus,
    labels: z.array(z.string()),
    created_at: Timestamp,
    updated_at: Timestamp,
  })
  .meta({ id: 'Episode', description: 'The one recording a task produced, created from a verified upload.' });
export type Episode = z.infer<typeof Episode>;

const episodeFilters = {
  scene_id: Uuid.optional(),
  order_id: Uuid.optional(),
  batch_id: Uuid.optional(),
  workstation_id: Uuid.optional(),
  task_id: Uuid.optional(),
  device_id: DeviceId.optional(),
  label: EpisodeLabel.optional(),
  created_from: Timestamp.optional(),
  created_to: Timestamp.optional(),
};
export const EpisodeListQuery = PageQuery.extend({
  ...episodeFilters,
  qa_status: commaList(QaStatus).optional(),
}).strict();
export const EpisodeListFilter = PageQuery.extend({
  ...episodeFilters,
  qa_status: z.array(QaStatus).min(1).optional(),
}).strict();
export type EpisodeListFilter = z.infer<typeof EpisodeListFilter>;

export const EpisodePage = pageOf(Episode).meta({ id: 'EpisodePage' });
export const EpisodeIdParams = z.object({ id: Uuid }).strict();

export const episodeRpc = {
  get: defineRpc({
    subject: 'production.rpc.episode.get',
    kind: 'query',
    request: z.object({ id: Uuid }),
    reply: Episode,
  }),
  list: defineRpc({
    subject: 'production.rpc.episode.list',
    kind: 'query',
    request: z.object({ query: EpisodeListFilter }),
    reply: EpisodePage,
  }),
} as const;

export const episodeEvents = {
  created: defineEvent({
    type: 'production.evt.episode.created.v1',
    schema: z.object({ episode: Episode }),
    description:
      'A verified upload became the task’s one episode (QA starts from here; transfer acknowledges the upload).',
  }),
  updated: defineEvent({
    type: 'production.evt.episode.updated.v1',
    schema: z.object({ episode: Episode, changed: z.array(z.string()) }),
    description: 'An episode changed in production, e.g. labelled `recalled_batch` by a batch recall.',
  }),
  uploadRejected: defineEvent({
    type: 'production.evt.upload.rejected.v1',
    schema: z.object({
      upload_id: Uuid,
      organization_id: Uuid,
      task_id: Uuid,
      device_id: z.string(),
      reason: UploadRejectionReason,
      detail: z.string(),
    }),
    description:
      'A verified upload was refused (no episode): `reason` is machine-readable, `detail` says why in words.',
  }),
} as const;
