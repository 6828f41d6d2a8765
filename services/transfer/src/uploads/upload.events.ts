import { type EventPayload, type Upload, uploadEvents } from '@ferry/contracts';

/**
 * The `upload.verified` payload of a verified upload, built from the upload as clients see it: one builder
 * for the verdict and for the housekeeper's re-publication, so both say the same thing. Append it with the
 * upload id as the event id (the dedup key: one `upload.verified` per upload, whatever retries happen).
 */
export function uploadVerifiedPayload(upload: Upload): EventPayload<typeof uploadEvents.verified> {
  if (upload.status !== 'verified' || !upload.verified_at) {
    throw new Error(`upload ${upload.id} is ${upload.status}, not verified`);
  }
  const file = (role: 'mcap' | 'sidecar') => {
    const f = upload.files.find((x) => x.role === role);
    return f && { object_key: f.object_key, size_bytes: f.size_bytes, sha256: f.sha256 };
  };
  const mcap = file('mcap');
  if (!mcap) throw new Error(`upload ${upload.id} has no mcap file`);
  const sidecar = file('sidecar');
  return {
    upload_id: upload.id,
    organization_id: upload.organization_id,
    task_id: upload.task_id,
    device_id: upload.device_id,
    files: { mcap, ...(sidecar ? { sidecar } : {}) },
    recording: upload.recording,
    verified_at: upload.verified_at,
  };
}
