import { randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import { type IWritable, McapWriter } from '@mcap/core';
import { type Compression, chunkCompressor } from './compression.js';

const START_NS = 1_700_000_000_000_000_000n;

export interface LargeMcapOptions {
  /** Stop once the file reaches this size (it ends a little past it: the last chunk and the summary). */
  bytes: number;
  compression?: Compression;
  /** Default 4 MiB, what ROS 2 recorders commonly use. */
  chunkSize?: number;
  /**
   * `camera` (default): 30 Hz colour frames of 150 KB that are already compressed (JPEG-like, incompressible),
   * 500 Hz joint states, 200 Hz IMU. `camera+depth` adds 30 Hz raw 16-bit depth frames (320×240, smooth with
   * sensor noise, compressing about 3:1), whose entropy-coded blocks are the slow case for zstd decoding.
   */
  content?: 'camera' | 'camera+depth';
}

export interface LargeMcapResult {
  bytes: number;
  messages: number;
  durationSec: number;
  topics: string[];
}

const DEPTH_W = 320;
const DEPTH_H = 240;

/** A smooth depth ramp plus two bits of sensor noise per pixel, little-endian uint16. */
function depthFrame(k: number, noise: Uint8Array): Uint8Array {
  const out = new Uint8Array(DEPTH_W * DEPTH_H * 2);
  for (let y = 0, i = 0; y < DEPTH_H; y++) {
    for (let x = 0; x < DEPTH_W; x++, i++) {
      const z = 800 + ((x * 3 + y * 5 + k * 11) >> 2) + (noise[(i + k * 977) & (noise.length - 1)]! & 3);
      out[2 * i] = z & 0xff;
      out[2 * i + 1] = z >> 8;
    }
  }
  return out;
}

/**
 * A large valid recording written straight to `path` with bounded memory (one chunk at a time), shaped like a
 * manipulation demo (see `content`).
 */
export async function writeLargeMcap(path: string, options: LargeMcapOptions): Promise<LargeMcapResult> {
  const file = await open(path, 'w');
  let position = 0n;
  const writable: IWritable = {
    position: () => position,
    async write(buffer: Uint8Array) {
      let off = 0;
      while (off < buffer.byteLength) {
        const { bytesWritten } = await file.write(buffer, off, buffer.byteLength - off);
        off += bytesWritten;
      }
      position += BigInt(buffer.byteLength);
    },
  };
  try {
    const writer = new McapWriter({
      writable,
      chunkSize: options.chunkSize ?? 4 * 1024 * 1024,
      compressChunk: await chunkCompressor(options.compression ?? 'zstd', 1),
    });
    await writer.start({ profile: 'ros2', library: 'ferry-qa-corpus large' });
    const topics = [
      { topic: '/camera/color', schema: 'sensor_msgs/CompressedImage', hz: 30, bytes: 150_000 },
      { topic: '/joint_states', schema: 'sensor_msgs/JointState', hz: 500, bytes: 200 },
      { topic: '/imu', schema: 'sensor_msgs/Imu', hz: 200, bytes: 100 },
    ];
    if (options.content === 'camera+depth') {
      topics.push({ topic: '/camera/depth', schema: 'sensor_msgs/Image', hz: 30, bytes: DEPTH_W * DEPTH_H * 2 });
    }
    const ids: number[] = [];
    for (const t of topics) {
      const schemaId = await writer.registerSchema({
        name: t.schema,
        encoding: 'ros2msg',
        data: new TextEncoder().encode(t.schema),
      });
      ids.push(await writer.registerChannel({ schemaId, topic: t.topic, messageEncoding: 'cdr', metadata: new Map() }));
    }
    const noise = randomBytes(32 << 20);
    const slice = (size: number, k: number) => {
      const at = (k * 7_919_993) % (noise.length - size);
      return noise.subarray(at, at + size);
    };
    // A 1 ms tick drives every topic at its own rate.
    const sequence = topics.map(() => 0);
    let messages = 0;
    let tick = 0;
    while (position < BigInt(options.bytes)) {
      const logTime = START_NS + BigInt(tick) * 1_000_000n;
      for (let i = 0; i < topics.length; i++) {
        const t = topics[i]!;
        if (tick % Math.round(1000 / t.hz) !== 0) continue;
        const k = sequence[i]!++;
        const data = t.topic === '/camera/depth' ? depthFrame(k, noise) : slice(t.bytes, k + i);
        await writer.addMessage({ channelId: ids[i]!, sequence: k, logTime, publishTime: logTime, data });
        messages++;
      }
      tick++;
    }
    await writer.end();
    return { bytes: Number(position), messages, durationSec: (tick - 1) / 1000, topics: topics.map((t) => t.topic) };
  } finally {
    await file.close();
  }
}
