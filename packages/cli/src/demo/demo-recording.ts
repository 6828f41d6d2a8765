import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { type FileHandle, open, rename, stat } from 'node:fs/promises';
import path from 'node:path';
import { type IWritable, McapWriter } from '@mcap/core';

/** A recording on disk, as a recorder leaves it: the MCAP and its JSON sidecar. */
export interface DemoRecording {
  mcap: { path: string; size: number; sha256: string };
  sidecar: { path: string; size: number; sha256: string };
  durationSec: number;
  messageCount: number;
  topics: string[];
}

export interface DemoRecordingOptions {
  /** Seconds of log time. Default 5. */
  seconds?: number;
  /** Camera frames per second on `/camera`. Default 15. */
  cameraHz?: number;
  /** Joint states per second on `/joints`. Default 60. */
  jointsHz?: number;
  /** Log time of the first message. Default now. */
  startedAt?: Date;
}

const RECORDER = 'ferry-demo-upload/1';
const CAMERA = { width: 64, height: 48 };
const JOINTS = ['shoulder_pan', 'shoulder_lift', 'elbow', 'wrist_1', 'wrist_2', 'wrist_3'];

class FileWritable implements IWritable {
  private offset = 0n;
  constructor(private readonly file: FileHandle) {}
  async write(buffer: Uint8Array): Promise<void> {
    await this.file.write(buffer);
    this.offset += BigInt(buffer.byteLength);
  }
  position(): bigint {
    return this.offset;
  }
}

const jsonSchema = (schema: object) => new TextEncoder().encode(JSON.stringify(schema));
const json = (value: object) => new TextEncoder().encode(JSON.stringify(value));

async function describeFile(file: string) {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return { path: file, size: (await stat(file)).size, sha256: hash.digest('hex') };
}

/**
 * Writes a small but real MCAP (chunked, indexed, with statistics: what a ROS 2 recorder writes) of a
 * robot arm: `/camera` frames and `/joints` states, JSON-encoded with JSON schemas, in log-time order.
 */
async function writeMcap(file: string, options: Required<DemoRecordingOptions>) {
  const handle = await open(file, 'w');
  const writer = new McapWriter({ writable: new FileWritable(handle), chunkSize: 256 * 1024 });
  try {
    await writer.start({ profile: '', library: RECORDER });
    const camera = await writer.registerChannel({
      topic: '/camera',
      messageEncoding: 'json',
      metadata: new Map([['frame_id', 'wrist_camera']]),
      schemaId: await writer.registerSchema({
        name: 'demo.CameraFrame',
        encoding: 'jsonschema',
        data: jsonSchema({
          type: 'object',
          properties: {
            frame: { type: 'integer' },
            width: { type: 'integer' },
            height: { type: 'integer' },
            encoding: { type: 'string' },
            data: { type: 'string', contentEncoding: 'base64' },
          },
        }),
      }),
    });
    const joints = await writer.registerChannel({
      topic: '/joints',
      messageEncoding: 'json',
      metadata: new Map(),
      schemaId: await writer.registerSchema({
        name: 'demo.JointState',
        encoding: 'jsonschema',
        data: jsonSchema({
          type: 'object',
          properties: {
            name: { type: 'array', items: { type: 'string' } },
            position: { type: 'array', items: { type: 'number' } },
            velocity: { type: 'array', items: { type: 'number' } },
          },
        }),
      }),
    });
    // Both streams merged on one timeline, so log times never go backwards.
    const start = BigInt(options.startedAt.getTime()) * 1_000_000n;
    const events: { channel: number; n: number; ns: bigint }[] = [];
    for (const [channel, hz] of [
      [camera, options.cameraHz],
      [joints, options.jointsHz],
    ] as const) {
      for (let n = 0; n < options.seconds * hz; n++)
        events.push({ channel, n, ns: BigInt(Math.round((n * 1e9) / hz)) });
    }
    events.sort((a, b) => (a.ns < b.ns ? -1 : a.ns > b.ns ? 1 : a.channel - b.channel));
    const pixels = Buffer.alloc(CAMERA.width * CAMERA.height);
    for (const e of events) {
      const t = Number(e.ns) / 1e9;
      let data: Uint8Array;
      if (e.channel === camera) {
        // A moving gradient: frames differ, as real ones do.
        for (let i = 0; i < pixels.length; i++) pixels[i] = (i + e.n * 7) & 0xff;
        data = json({ frame: e.n, ...CAMERA, encoding: 'mono8', data: pixels.toString('base64') });
      } else {
        const position = JOINTS.map((_, j) => Number(Math.sin(t + j).toFixed(6)));
        const velocity = JOINTS.map((_, j) => Number(Math.cos(t + j).toFixed(6)));
        data = json({ name: JOINTS, position, velocity });
      }
      await writer.addMessage({
        channelId: e.channel,
        sequence: e.n,
        logTime: start + e.ns,
        publishTime: start + e.ns,
        data,
      });
    }
    await writer.end();
    const last = events.at(-1)?.ns ?? 0n;
    return { messageCount: events.length, durationSec: Math.round(Number(last) / 1e6) / 1000 };
  } finally {
    await handle.close();
  }
}

/**
 * The demo recording of a task under `dir` (`<task>.mcap` and `<task>.json`): made once, then found
 * again, as a device keeps its recording until the upload is acknowledged — so an upload interrupted
 * and started again declares the very same bytes and resumes.
 */
export async function demoRecording(
  dir: string,
  taskId: string,
  options: DemoRecordingOptions = {},
): Promise<DemoRecording & { reused: boolean }> {
  mkdirSync(dir, { recursive: true });
  const mcapPath = path.join(dir, `${taskId}.mcap`);
  const sidecarPath = path.join(dir, `${taskId}.json`);
  const reused = existsSync(mcapPath) && existsSync(sidecarPath);
  if (!reused) {
    const startedAt = options.startedAt ?? new Date();
    const settings = {
      seconds: options.seconds ?? 5,
      cameraHz: options.cameraHz ?? 15,
      jointsHz: options.jointsHz ?? 60,
      startedAt,
    };
    // Written aside and renamed: a recording cut halfway is never mistaken for a finished one.
    const { messageCount, durationSec } = await writeMcap(`${mcapPath}.partial`, settings);
    const sidecar = {
      recording: {
        duration_sec: durationSec,
        message_count: messageCount,
        topics_recorded: ['/camera', '/joints'],
        started_at: startedAt.toISOString(),
        ended_at: new Date(startedAt.getTime() + durationSec * 1000).toISOString(),
        recorder_version: RECORDER,
      },
    };
    writeFileSync(sidecarPath, `${JSON.stringify(sidecar, null, 2)}\n`);
    await rename(`${mcapPath}.partial`, mcapPath);
  }
  const { recording } = JSON.parse(readFileSync(sidecarPath, 'utf8')) as {
    recording: { duration_sec: number; message_count: number; topics_recorded: string[] };
  };
  return {
    mcap: await describeFile(mcapPath),
    sidecar: await describeFile(sidecarPath),
    durationSec: recording.duration_sec,
    messageCount: recording.message_count,
    topics: recording.topics_recorded,
    reused,
  };
}
