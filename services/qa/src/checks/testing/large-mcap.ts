import { randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import { type IWritable, McapWriter } from '@mcap/core';
import { type Compression, chunkCompressor, START_NS } from './mcap-corpus.js';

export interface LargeMcapOptions {
  /** Stop once the file reaches this size (it ends a little past it: the last chunk and the summary). */
  bytes: number;
  compression?: Compression;
  /** Default 4 MiB, what ROS 2 recorders commonly use. */
  chunkSize?: number;
}

export interface LargeMcapResult {
  bytes: number;
  messages: number;
  durationSec: number;
  topics: string[];
}

/**
 * A large valid recording written straight to `path` with bounded memory (one chunk at a time), shaped like a
 * manipulation demo: 30 Hz colour frames (150 KB, incompressible like JPEG), 30 Hz depth frames (100 KB,
 * compressing about 2:1), 500 Hz joint states and 200 Hz IMU samples.
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
      compressChunk: await chunkCompressor(options.compression ?? 'zstd'),
    });
    await writer.start({ profile: 'ros2', library: 'ferry-qa-corpus large' });
    const topics = [
      { topic: '/camera/color', schema: 'sensor_msgs/CompressedImage', hz: 30, bytes: 150_000 },
      { topic: '/camera/depth', schema: 'sensor_msgs/Image', hz: 30, bytes: 100_000 },
      { topic: '/joint_states', schema: 'sensor_msgs/JointState', hz: 500, bytes: 200 },
      { topic: '/imu', schema: 'sensor_msgs/Imu', hz: 200, bytes: 100 },
    ];
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
    const depth = Uint8Array.from(randomBytes(32 << 20), (b) => b & 0x0f);
    const slice = (pool: Uint8Array, size: number, k: number) => {
      const at = (k * 7_919_993) % (pool.length - size);
      return pool.subarray(at, at + size);
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
        const data = t.topic === '/camera/depth' ? slice(depth, t.bytes, k) : slice(noise, t.bytes, k + i);
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
