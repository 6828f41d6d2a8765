import { createHash } from 'node:crypto';
import { crc32 } from 'node:zlib';
import type { QaProfile, RecordingMetadata } from '@ferry/contracts';
import { type McapTypes, McapWriter, TempBuffer } from '@mcap/core';
import { FOOTER_CRC_COVERED, Op, opName, RECORD_PREFIX } from '../mcap-records.js';
import { type Compression, chunkCompressor } from './compression.js';

export { type Compression, chunkCompressor } from './compression.js';
export { type LargeMcapOptions, type LargeMcapResult, writeLargeMcap } from './large-mcap.js';

/**
 * Recordings for tests, generated (never committed): good ones in every layout, and one per kind of damage,
 * each with the check that must catch it and the wording its details must contain. Other test files (end-to-end
 * uploads, the benchmark) reuse them.
 */

export interface TopicSpec {
  topic: string;
  schemaName: string;
  hz: number;
  payloadBytes: number;
  /** No messages in [fromSec, toSec) of the recording. */
  gap?: { fromSec: number; toSec: number };
}

export const DEFAULT_TOPICS: readonly TopicSpec[] = [
  { topic: '/camera/color', schemaName: 'sensor_msgs/CompressedImage', hz: 10, payloadBytes: 2048 },
  { topic: '/joint_states', schemaName: 'sensor_msgs/JointState', hz: 100, payloadBytes: 96 },
  { topic: '/imu', schemaName: 'sensor_msgs/Imu', hz: 50, payloadBytes: 64 },
];

/** 2023-11-14T22:13:20Z in ns: a plausible epoch, past 2^53 so times need exact 64-bit handling. */
export const START_NS = 1_700_000_000_000_000_000n;

export interface RecordingSpec {
  compression?: Compression;
  /** Messages in chunks (default) or straight in the data section. */
  chunked?: boolean;
  /** Chunk size target in bytes; small so every file has several chunks. Default 8 KiB. */
  chunkSize?: number;
  durationSec?: number;
  topics?: readonly TopicSpec[];
  /** Rewrites the message list before writing (reorder, drop, retime). */
  messages?: (messages: McapTypes.Message[]) => McapTypes.Message[];
  /** Alters the writer's statistics just before the summary is written (statistics that lie). */
  statistics?: (statistics: McapTypes.Statistics) => void;
  /** Register the channels (and schemas) but write no message. */
  noMessages?: boolean;
}

export interface GeneratedMessage {
  topic: string;
  channelId: number;
  sequence: number;
  logTime: bigint;
}

/** Deterministic payload: a repeating pattern keyed by the sequence, compressible like real sensor data. */
function payload(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = (seed * 31 + i * 7 + (i >> 5)) & 0xff;
  return out;
}

/** The messages a spec describes, in log-time order (before `spec.messages` rewrites them). */
export function plannedMessages(topics: readonly TopicSpec[], durationSec: number): McapTypes.Message[] {
  const out: McapTypes.Message[] = [];
  topics.forEach((t, channelId) => {
    const periodNs = 1e9 / t.hz;
    for (let k = 0; k * periodNs <= durationSec * 1e9; k++) {
      const offsetNs = Math.round(k * periodNs);
      if (t.gap && offsetNs >= t.gap.fromSec * 1e9 && offsetNs < t.gap.toSec * 1e9) continue;
      const logTime = START_NS + BigInt(offsetNs);
      out.push({ channelId, sequence: k, logTime, publishTime: logTime, data: payload(t.payloadBytes, k + channelId) });
    }
  });
  return out.sort((a, b) => (a.logTime < b.logTime ? -1 : a.logTime > b.logTime ? 1 : a.channelId - b.channelId));
}

export async function writeRecording(spec: RecordingSpec = {}): Promise<Uint8Array> {
  const topics = spec.topics ?? DEFAULT_TOPICS;
  const buffer = new TempBuffer();
  const writer = new McapWriter({
    writable: buffer,
    useChunks: spec.chunked ?? true,
    chunkSize: spec.chunkSize ?? 8 * 1024,
    compressChunk: await chunkCompressor(spec.compression ?? 'none'),
  });
  await writer.start({ profile: 'ros2', library: 'ferry-qa-corpus' });
  for (const t of topics) {
    const schemaId = await writer.registerSchema({
      name: t.schemaName,
      encoding: 'ros2msg',
      data: new TextEncoder().encode(`# ${t.schemaName}\n`),
    });
    await writer.registerChannel({ schemaId, topic: t.topic, messageEncoding: 'cdr', metadata: new Map() });
  }
  if (!spec.noMessages) {
    let messages = plannedMessages(topics, spec.durationSec ?? 2);
    if (spec.messages) messages = spec.messages(messages);
    for (const m of messages) await writer.addMessage(m);
  }
  if (spec.statistics && writer.statistics) spec.statistics(writer.statistics);
  await writer.end();
  return buffer.get();
}

// ---------------------------------------------------------------------------------------------------------------
// Byte-level surgery

export interface RecordRef {
  opcode: number;
  offset: number;
  /** Content length (after the 9-byte prefix). */
  length: number;
  end: number;
}

/** Top-level records of a well-formed file, in order. */
export function listRecords(bytes: Uint8Array): RecordRef[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: RecordRef[] = [];
  for (let o = 8; o + RECORD_PREFIX <= bytes.length - 8; ) {
    const opcode = bytes[o]!;
    const length = Number(view.getBigUint64(o + 1, true));
    out.push({ opcode, offset: o, length, end: o + RECORD_PREFIX + length });
    o += RECORD_PREFIX + length;
    if (opcode === Op.FOOTER) break;
  }
  return out;
}

export const recordsOf = (bytes: Uint8Array, opcode: number) => listRecords(bytes).filter((r) => r.opcode === opcode);

export function nth(bytes: Uint8Array, opcode: number, n = 0): RecordRef {
  const r = recordsOf(bytes, opcode)[n];
  if (!r) throw new Error(`no record #${n} with opcode ${opcode}`);
  return r;
}

const view = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);

/** Recomputes the data-section CRC (DataEnd) and the summary CRC (Footer) after an edit, so that only the edit remains. */
export function fixCrcs(bytes: Uint8Array): Uint8Array {
  const out = bytes.slice();
  const records = listRecords(out);
  const dataEnd = records.find((r) => r.opcode === Op.DATA_END);
  const footer = records.find((r) => r.opcode === Op.FOOTER);
  if (dataEnd) view(out).setUint32(dataEnd.offset + RECORD_PREFIX, crc32(out.subarray(0, dataEnd.offset)), true);
  if (dataEnd && footer) {
    view(out).setUint32(
      footer.offset + FOOTER_CRC_COVERED,
      crc32(out.subarray(dataEnd.end, footer.offset + FOOTER_CRC_COVERED)),
      true,
    );
  }
  return out;
}

/** Uncompressed chunk: recomputes its uncompressed CRC after its records were edited. */
export function fixChunkCrc(bytes: Uint8Array, chunk: RecordRef): Uint8Array {
  const out = bytes.slice();
  const v = view(out);
  const c = chunk.offset + RECORD_PREFIX;
  const compressionLength = v.getUint32(c + 28, true);
  const recordsStart = c + 32 + compressionLength + 8;
  const recordsLength = Number(v.getBigUint64(c + 32 + compressionLength, true));
  v.setUint32(c + 24, crc32(out.subarray(recordsStart, recordsStart + recordsLength)), true);
  return out;
}

/** Where the records of an uncompressed chunk start in the file. */
export function chunkRecordsStart(bytes: Uint8Array, chunk: RecordRef): number {
  const c = chunk.offset + RECORD_PREFIX;
  return c + 32 + view(bytes).getUint32(c + 28, true) + 8;
}

/** The messages of an uncompressed chunk: where each starts in the chunk's records, its sequence and log time. */
export function chunkMessages(
  bytes: Uint8Array,
  chunk: RecordRef,
): { byte: number; channelId: number; sequence: number; logTime: bigint }[] {
  const start = chunkRecordsStart(bytes, chunk);
  const v = view(bytes);
  const out: { byte: number; channelId: number; sequence: number; logTime: bigint }[] = [];
  for (let o = start; o < chunk.end; ) {
    const length = Number(v.getBigUint64(o + 1, true));
    if (bytes[o] === Op.MESSAGE) {
      const c = o + RECORD_PREFIX;
      out.push({
        byte: o - start,
        channelId: v.getUint16(c, true),
        sequence: v.getUint32(c + 2, true),
        logTime: v.getBigUint64(c + 6, true),
      });
    }
    o += RECORD_PREFIX + length;
  }
  return out;
}

export function withBytes(bytes: Uint8Array, offset: number, edit: (v: DataView) => void): Uint8Array {
  const out = bytes.slice();
  edit(new DataView(out.buffer, out.byteOffset + offset, out.byteLength - offset));
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// The corpus

export interface CorpusEntry {
  name: string;
  bytes: Uint8Array;
  recording?: RecordingMetadata;
  profile?: QaProfile;
  /** Undefined for a good file (every check passes or is skipped). */
  caughtBy?: {
    check: 'transport' | 'mcap_integrity' | 'not_empty' | 'log_time_order' | 'sidecar_consistency' | 'profile';
    /** Texts its details must contain, naming the place. */
    details: string[];
  };
}

/** Matches the default recording: 2 s, three topics, the rates and gaps in DEFAULT_TOPICS. */
export const GOOD_PROFILE: QaProfile = {
  required_topics: ['/camera/color', '/joint_states'],
  duration_sec: { min: 1, max: 10 },
  topics: {
    '/camera/color': { min_rate_hz: 8, max_gap_ms: 150 },
    '/joint_states': { min_rate_hz: 90, max_gap_ms: 20 },
  },
};

/** What a recorder's sidecar says about the default recording (message count, topics, duration). */
export function goodSidecar(bytes: Uint8Array): RecordingMetadata {
  const messages = plannedMessages(DEFAULT_TOPICS, 2).length;
  void bytes;
  return { message_count: messages, topics: DEFAULT_TOPICS.map((t) => t.topic), duration_sec: 2.0 };
}

export async function goodCorpus(): Promise<CorpusEntry[]> {
  const chunked = await writeRecording();
  return [
    { name: 'good: chunked, uncompressed', bytes: chunked },
    { name: 'good: chunked, zstd', bytes: await writeRecording({ compression: 'zstd' }) },
    { name: 'good: chunked, lz4', bytes: await writeRecording({ compression: 'lz4' }) },
    { name: 'good: unchunked', bytes: await writeRecording({ chunked: false }) },
  ].map((e) => ({ ...e, recording: goodSidecar(e.bytes), profile: GOOD_PROFILE }));
}

const hexCrc = (n: number) => `0x${n.toString(16).padStart(8, '0')}`;

export async function defectCorpus(): Promise<CorpusEntry[]> {
  const good = await writeRecording();
  const zstd = await writeRecording({ compression: 'zstd' });
  const lz4 = await writeRecording({ compression: 'lz4' });
  const flat = await writeRecording({ chunked: false });
  const size = good.length;
  const chunk1 = nth(good, Op.CHUNK, 1);
  const dataEnd = nth(good, Op.DATA_END);
  const footer = nth(good, Op.FOOTER);
  const out: CorpusEntry[] = [];
  const integrity = (name: string, bytes: Uint8Array, ...details: string[]) =>
    out.push({ name, bytes, caughtBy: { check: 'mcap_integrity', details } });

  // Truncation: the readable end is the last whole record before the cut.
  integrity('truncated inside the header', good.subarray(0, 20), 'file ends inside the Header record at offset 8');
  const midChunk = chunk1.offset + Math.floor((RECORD_PREFIX + chunk1.length) / 2);
  integrity(
    'truncated mid-chunk',
    good.subarray(0, midChunk),
    `file ends inside the Chunk record at offset ${chunk1.offset}`,
    `readable up to offset ${chunk1.offset} of ${midChunk} bytes`,
  );
  const summaryCut = dataEnd.end + 40;
  const cutRecord = listRecords(good).find((r) => r.offset <= summaryCut && r.end > summaryCut)!;
  integrity(
    'truncated inside the summary',
    good.subarray(0, summaryCut),
    `file ends inside the ${opName(cutRecord.opcode)} record at offset ${cutRecord.offset}`,
    `readable up to offset ${cutRecord.offset} of ${summaryCut} bytes`,
  );
  integrity(
    'truncated just before the trailing magic',
    good.subarray(0, size - 8),
    `file ends before the trailing magic at offset ${size - 8}; readable up to offset ${size - 8} of ${size - 8} bytes`,
  );

  // Magic.
  integrity(
    'altered leading magic',
    withBytes(good, 1, (v) => v.setUint8(0, 0x4e)),
    'file starts with 89 4e 43 41 50 30 0d 0a instead of the MCAP magic 89 4d 43 41 50 30 0d 0a',
  );
  integrity(
    'altered trailing magic',
    withBytes(good, size - 1, (v) => v.setUint8(0, 0x0b)),
    `file ends with 89 4d 43 41 50 30 0d 0b at offset ${size - 8} instead of the MCAP magic`,
  );

  // A flipped byte inside a chunk's messages; the data-section CRC is made to match, so only the chunk CRC tells.
  const flipAt = chunkRecordsStart(good, chunk1) + 200;
  const damaged = fixCrcs(withBytes(good, flipAt, (v) => v.setUint8(0, v.getUint8(0) ^ 0xff)));
  integrity('damaged chunk, intact summary', damaged, `chunk 1 (offset ${chunk1.offset}) fails its CRC`);
  const zChunk = nth(zstd, Op.CHUNK, 1);
  const zDamaged = fixCrcs(withBytes(zstd, zChunk.offset + RECORD_PREFIX + 60, (v) => v.setUint32(0, 0xdeadbeef)));
  integrity('damaged zstd chunk, intact summary', zDamaged, `chunk 1 (offset ${zChunk.offset})`);
  // lz4: a frame that does not decode (its magic overwritten), and one that decodes to other bytes (a literal flipped).
  const lChunk = nth(lz4, Op.CHUNK, 1);
  integrity(
    'damaged lz4 chunk: does not decode',
    fixCrcs(withBytes(lz4, chunkRecordsStart(lz4, lChunk), (v) => v.setUint32(0, 0xdeadbeef))),
    `chunk 1 (offset ${lChunk.offset}) does not decompress (lz4): lz4: data does not decode`,
  );
  // The frame ends with the last block and a 4-byte end mark; a block's last 5 bytes are always literals, copied
  // as they are, so this flips the chunk's last uncompressed byte and the frame still decodes.
  // Its uncompressed bytes are those of the uncompressed file's chunk 1 (the writer cuts chunks by uncompressed size).
  const lastLiteral = lChunk.end - 4 - 1;
  const lRecords = good.slice(chunkRecordsStart(good, chunk1), chunk1.end);
  const lCrc = crc32(lRecords);
  lRecords[lRecords.length - 1] = lRecords.at(-1)! ^ 0xff;
  integrity(
    'damaged lz4 chunk: CRC mismatch',
    fixCrcs(withBytes(lz4, lastLiteral, (v) => v.setUint8(0, v.getUint8(0) ^ 0xff))),
    `chunk 1 (offset ${lChunk.offset}) fails its CRC: header says ${hexCrc(lCrc)}, its ${lRecords.length} uncompressed bytes give ${hexCrc(crc32(lRecords))}`,
  );

  // CRCs.
  const storedCrc = view(good).getUint32(dataEnd.offset + RECORD_PREFIX, true);
  integrity(
    'altered data-section CRC',
    fixCrcs(good).map((b, i) => (i === dataEnd.offset + RECORD_PREFIX ? b ^ 0x01 : b)),
    `data section CRC mismatch: DataEnd at offset ${dataEnd.offset} records ${hexCrc((storedCrc ^ 0x01) >>> 0)}, bytes 0–${dataEnd.offset} give ${hexCrc(storedCrc)}`,
  );
  const statsRecord = nth(good, Op.STATISTICS);
  integrity(
    'altered summary bytes',
    withBytes(good, statsRecord.offset + RECORD_PREFIX, (v) => v.setBigUint64(0, v.getBigUint64(0, true) + 1n, true)),
    `summary CRC mismatch: Footer at offset ${footer.offset} records`,
  );

  // Statistics that lie (the summary CRC is correct: the writer computed it over the lies).
  const messages = plannedMessages(DEFAULT_TOPICS, 2);
  integrity(
    'statistics lie: message count',
    await writeRecording({
      statistics: (s) => {
        s.messageCount += 7n;
      },
    }),
    `Statistics.message_count is ${messages.length + 7}, the file holds ${messages.length}`,
  );
  const imuCount = messages.filter((m) => m.channelId === 2).length;
  integrity(
    'statistics lie: channel message count',
    await writeRecording({
      statistics: (s) => {
        s.channelMessageCounts.set(2, BigInt(imuCount - 3));
      },
    }),
    `Statistics.channel_message_counts for channel 2 (/imu) is ${imuCount - 3}, the file holds ${imuCount}`,
  );
  integrity(
    'statistics lie: times',
    await writeRecording({
      statistics: (s) => {
        s.messageEndTime += 5_000_000_000n;
      },
    }),
    `Statistics.message_end_time is ${messages.at(-1)!.logTime + 5_000_000_000n}, the file holds ${messages.at(-1)!.logTime}`,
  );
  integrity(
    'statistics lie: chunk count',
    await writeRecording({
      statistics: (s) => {
        s.chunkCount -= 1;
      },
    }),
    `Statistics.chunk_count is ${recordsOf(good, Op.CHUNK).length - 1}, the file holds ${recordsOf(good, Op.CHUNK).length}`,
  );

  // Definitions. In the unchunked file, the first message follows its channel: point it at channel 9.
  const firstMessage = nth(flat, Op.MESSAGE);
  integrity(
    'message on an undefined channel',
    fixCrcs(withBytes(flat, firstMessage.offset + RECORD_PREFIX, (v) => v.setUint16(0, 9, true))),
    `message at offset ${firstMessage.offset} is on channel 9, which has no Channel record before it (sequence 0, log time ${START_NS})`,
  );
  // Inside a chunk (chunk 1: every channel was defined in chunk 0), the first message is pointed at channel 9.
  const inChunk = chunkMessages(good, chunk1)[0]!;
  integrity(
    'message on an undefined channel inside a chunk',
    fixCrcs(
      fixChunkCrc(
        withBytes(good, chunkRecordsStart(good, chunk1) + inChunk.byte + RECORD_PREFIX, (v) => v.setUint16(0, 9, true)),
        chunk1,
      ),
    ),
    `message in chunk 1 (offset ${chunk1.offset}) at byte ${inChunk.byte} is on channel 9, which has no Channel record before it (sequence ${inChunk.sequence}, log time ${inChunk.logTime})`,
  );
  const firstChannel = nth(flat, Op.CHANNEL);
  integrity(
    'channel on an undefined schema',
    fixCrcs(withBytes(flat, firstChannel.offset + RECORD_PREFIX + 2, (v) => v.setUint16(0, 7, true))),
    `Channel 0 (/camera/color) at offset ${firstChannel.offset} refers to schema 7, which is not defined before it`,
  );

  // Log time going backwards: swap two /imu messages (chunked and unchunked).
  const swapImu = (ms: McapTypes.Message[]) => {
    const imu = ms.map((m, i) => [m, i] as const).filter(([m]) => m.channelId === 2);
    const [a, b] = [imu[10]![1], imu[11]![1]];
    const copy = [...ms];
    [copy[a], copy[b]] = [copy[b]!, copy[a]!];
    return copy;
  };
  const imu10 = messages.filter((m) => m.channelId === 2)[10]!;
  const imu11 = messages.filter((m) => m.channelId === 2)[11]!;
  const backwards = `/imu (channel 2) message sequence 10 at log time ${imu10.logTime} comes after log time ${imu11.logTime}`;
  out.push({
    name: 'log time backwards (chunked)',
    bytes: await writeRecording({ messages: swapImu }),
    caughtBy: { check: 'log_time_order', details: ['log time goes backwards for 1 message', backwards] },
  });
  out.push({
    name: 'log time backwards (unchunked)',
    bytes: await writeRecording({ chunked: false, messages: swapImu }),
    caughtBy: { check: 'log_time_order', details: ['log time goes backwards for 1 message', backwards, '(at offset '] },
  });

  // Empty recordings.
  out.push({
    name: 'no channels',
    bytes: await writeRecording({ topics: [] }),
    caughtBy: { check: 'not_empty', details: ['recording has no channels'] },
  });
  out.push({
    name: 'channels without messages',
    bytes: await writeRecording({ noMessages: true }),
    caughtBy: { check: 'not_empty', details: ['recording has 3 channels but no messages'] },
  });

  // Indexes.
  const chunkIndex1 = nth(good, Op.CHUNK_INDEX, 1);
  const chunk1End = view(good).getBigUint64(chunk1.offset + RECORD_PREFIX + 8, true);
  integrity(
    'chunk index disagrees with its chunk',
    fixCrcs(withBytes(good, chunkIndex1.offset + RECORD_PREFIX + 8, (v) => v.setBigUint64(0, chunk1End + 1n, true))),
    `ChunkIndex at offset ${chunkIndex1.offset} disagrees with chunk 1 (offset ${chunk1.offset}), index vs chunk: message_end_time ${chunk1End + 1n} vs ${chunk1End}`,
  );
  const messageIndex = recordsOf(good, Op.MESSAGE_INDEX).find((r) => r.offset > chunk1.offset && r.length > 6 + 32)!;
  const indexedChannel = view(good).getUint16(messageIndex.offset + RECORD_PREFIX, true);
  const topic = DEFAULT_TOPICS[indexedChannel]!.topic;
  const firstEntryOffset = view(good).getBigUint64(messageIndex.offset + RECORD_PREFIX + 6 + 8, true);
  integrity(
    'message index disagrees with its chunk',
    fixCrcs(
      withBytes(good, messageIndex.offset + RECORD_PREFIX + 6 + 8, (v) =>
        v.setBigUint64(0, firstEntryOffset + 3n, true),
      ),
    ),
    `MessageIndex for channel ${indexedChannel} (${topic}) at offset ${messageIndex.offset} (after chunk 1 at offset ${chunk1.offset}): entry 0 points at byte ${firstEntryOffset + 3n} of the chunk, where no message starts`,
  );

  // The sidecar and the profile, against the good recording.
  const sidecar = goodSidecar(good);
  const sidecarEntry = (name: string, recording: RecordingMetadata, ...details: string[]) =>
    out.push({ name, bytes: good, recording, caughtBy: { check: 'sidecar_consistency', details } });
  sidecarEntry(
    'sidecar: message count disagrees',
    { ...sidecar, message_count: sidecar.message_count! + 5 },
    `message_count: sidecar says ${sidecar.message_count! + 5}, MCAP has ${sidecar.message_count}`,
  );
  sidecarEntry(
    'sidecar: topics disagree',
    { ...sidecar, topics: ['/camera/color', '/joint_states', '/gripper'] },
    'topics: sidecar lists /gripper missing from the MCAP; MCAP has /imu not in the sidecar',
  );
  sidecarEntry(
    'sidecar: duration disagrees',
    { ...sidecar, duration_sec: 3.5 },
    'duration: sidecar says 3.500 s, MCAP spans 2.000 s (tolerance ±0.500 s)',
  );

  const profileEntry = (name: string, bytes: Uint8Array, profile: QaProfile, ...details: string[]) =>
    out.push({ name, bytes, profile, caughtBy: { check: 'profile', details } });
  profileEntry(
    'profile: required topic missing',
    good,
    { ...GOOD_PROFILE, required_topics: ['/camera/color', '/wrist_cam'] },
    'required topic /wrist_cam is missing',
  );
  profileEntry(
    'profile: rate too low',
    good,
    { ...GOOD_PROFILE, topics: { '/imu': { min_rate_hz: 100 } } },
    '/imu: rate 50.5 Hz is below the minimum 100 Hz',
  );
  profileEntry(
    'profile: gap too large',
    await writeRecording({
      topics: DEFAULT_TOPICS.map((t) =>
        t.topic === '/camera/color' ? { ...t, gap: { fromSec: 0.5, toSec: 1.2 } } : t,
      ),
    }),
    GOOD_PROFILE,
    `/camera/color: longest gap 800.0 ms (ending at log time ${START_NS + 1_200_000_000n}) exceeds max_gap_ms 150`,
  );
  profileEntry(
    'profile: duration out of range',
    good,
    { ...GOOD_PROFILE, duration_sec: { min: 5 } },
    'duration 2.000 s is below the minimum 5 s',
  );
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Feeding recordings to the suite

/** The bytes as a stream of pieces of `pieceBytes` (records straddle piece boundaries). */
export async function* streamOf(bytes: Uint8Array, pieceBytes = 4096): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < bytes.length; at += pieceBytes)
    yield bytes.subarray(at, Math.min(bytes.length, at + pieceBytes));
}

/** What the upload declared for these bytes. */
export const expectedOf = (bytes: Uint8Array) => ({
  size_bytes: bytes.length,
  sha256: createHash('sha256').update(bytes).digest('hex'),
});
