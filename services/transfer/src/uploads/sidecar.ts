import { findUnstorable, INPUT_LIMITS, RecordingMetadata, Timestamp } from '@ferry/contracts';
import { z } from 'zod';

/**
 * The recorder's JSON sidecar, as Keystone's recorders write it (`recording.*`, `topics_summary[]`).
 * Every field is optional; a field that is present must have the right type.
 */
const Sidecar = z
  .object({
    recording: z
      .object({
        duration_sec: z.number().min(0).optional(),
        message_count: z.number().int().min(0).optional(),
        topics_recorded: z.array(z.string().min(1).max(256)).max(1000).optional(),
        started_at: z.string().optional(),
        ended_at: z.string().optional(),
        recorder_version: z.string().max(200).optional(),
      })
      .passthrough()
      .optional(),
    topics_summary: z
      .array(z.object({ topic: z.string().min(1).max(256) }).passthrough())
      .max(1000)
      .optional(),
  })
  .passthrough();

export class SidecarInvalid extends Error {
  override readonly name = 'SidecarInvalid';
}

/**
 * What the sidecar says about the recording, as the `recording` of `upload.verified`. Throws
 * SidecarInvalid (with a message naming the problem) for bytes that are not UTF-8 JSON of that shape.
 */
export function parseSidecar(bytes: Buffer): RecordingMetadata {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new SidecarInvalid('the sidecar is not UTF-8');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new SidecarInvalid(`the sidecar is not JSON: ${(err as Error).message}`);
  }
  const unstorable = findUnstorable(json, { maxDepth: INPUT_LIMITS.bodyMaxDepth });
  if (unstorable) throw new SidecarInvalid(`sidecar ${unstorable.path.join('.') || '(root)'}: ${unstorable.message}`);
  const parsed = Sidecar.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new SidecarInvalid(`sidecar ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  const { recording = {}, topics_summary, ...rest } = parsed.data;
  const { duration_sec, message_count, topics_recorded, started_at, ended_at, recorder_version, ...recordingRest } =
    recording;
  const topics = [...new Set([...(topics_recorded ?? []), ...(topics_summary ?? []).map((t) => t.topic)])];
  const time = (v: string | undefined) => (v !== undefined && Timestamp.safeParse(v).success ? v : undefined);
  const extra = { ...rest, ...(Object.keys(recordingRest).length > 0 ? { recording: recordingRest } : {}) };
  if (topics_summary) Object.assign(extra, { topics_summary });
  return RecordingMetadata.parse({
    ...(duration_sec !== undefined ? { duration_sec } : {}),
    ...(message_count !== undefined ? { message_count } : {}),
    ...(topics.length > 0 ? { topics } : {}),
    ...(time(started_at) ? { started_at } : {}),
    ...(time(ended_at) ? { ended_at } : {}),
    ...(recorder_version !== undefined ? { recorder_version } : {}),
    ...(Object.keys(extra).length > 0 ? { extra } : {}),
  });
}
