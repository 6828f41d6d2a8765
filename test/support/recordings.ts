import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { RecordingMetadata, Upload } from '@ferry/contracts';
import type { DeviceWorld } from './device-world.js';

/** A JSON sidecar saying what a recorder would about a recording. */
export function sidecarOf(recording: RecordingMetadata): Buffer {
  return Buffer.from(
    JSON.stringify({
      recording: {
        duration_sec: recording.duration_sec,
        message_count: recording.message_count,
        topics_recorded: recording.topics,
      },
    }),
  );
}

/**
 * The device side of a whole recording, from the task's finish to its acknowledgement: uploads `mcap`
 * (and a sidecar) for the world's task `index` and waits for the outcome. Small files, in memory.
 */
export async function uploadRecording(
  w: DeviceWorld,
  mcap: Uint8Array,
  options: { sidecar?: Buffer; index?: number } = {},
): Promise<Upload> {
  const taskId = w.taskIds[options.index ?? 0]!;
  await w.device.api('POST', `/tasks/${taskId}/finish`, {});
  const uploader = w.uploader();
  const files = [
    { role: 'mcap' as const, size_bytes: mcap.byteLength, sha256: createHash('sha256').update(mcap).digest('hex') },
  ];
  if (options.sidecar) {
    files.push({
      role: 'sidecar' as const,
      size_bytes: options.sidecar.length,
      sha256: createHash('sha256').update(options.sidecar).digest('hex'),
    } as never);
  }
  const { body: upload } = await uploader.open(taskId, files);
  const bytes = { mcap: Buffer.from(mcap), sidecar: options.sidecar ?? Buffer.alloc(0) };
  await uploader.sendMissing(upload.id, {
    mcap: (s, l) => Readable.from([bytes.mcap.subarray(s, s + l)]),
    sidecar: (s, l) => Readable.from([bytes.sidecar.subarray(s, s + l)]),
  });
  await uploader.complete(upload.id);
  return uploader.waitForOutcome(upload.id);
}
