import { McapRecordBuilder, McapWriter, type McapWriterOptions, TempBuffer } from '@mcap/core';
import { describe, expect, it } from 'vitest';
import { loadDecompressors } from './decompressors.js';
import { MCAP_MAGIC, Op, RECORD_PREFIX } from './mcap-records.js';
import { scanMcap } from './mcap-scan.js';
import { McapScanner } from './mcap-scanner.js';
import { InlineDigest } from './stream-digest.js';
import { lz4FrameCompress } from './testing/lz4-frame.js';
import {
  chunkRecordsStart,
  DEFAULT_TOPICS,
  expectedOf,
  fixChunkCrc,
  fixCrcs,
  listRecords,
  nth,
  plannedMessages,
  recordsOf,
  START_NS,
  streamOf,
  withBytes,
  writeRecording,
} from './testing/mcap-corpus.js';

const scan = (bytes: Uint8Array, pieceBytes = 4096) => scanMcap(streamOf(bytes, pieceBytes), { digest: 'inline' });
const codes = (s: Awaited<ReturnType<typeof scan>>) => s.findings.map((f) => `${f.severity}:${f.code}`);

/** An @mcap/core writer that has written one message on channel `/a` (no schema); the test adds the rest and ends it. */
async function writerWithOneMessage(options: Omit<McapWriterOptions, 'writable'> = {}) {
  const buffer = new TempBuffer();
  const writer = new McapWriter({ writable: buffer, ...options });
  await writer.start({ profile: '', library: 'test' });
  const channelId = await writer.registerChannel({
    schemaId: 0,
    topic: '/a',
    messageEncoding: 'json',
    metadata: new Map(),
  });
  await writer.addMessage({ channelId, sequence: 0, logTime: 1n, publishTime: 1n, data: new Uint8Array(4) });
  return { buffer, writer, channelId };
}

describe('facts from one pass', () => {
  it('collects channels, topics, schemas, times, gaps, chunk stats, sha256 and byte count', async () => {
    const bytes = await writeRecording({ compression: 'zstd' });
    const s = await scan(bytes);
    const messages = plannedMessages(DEFAULT_TOPICS, 2);
    expect(s.findings).toEqual([]);
    expect(s.bytesRead).toBe(bytes.length);
    expect(s.sha256).toBe(expectedOf(bytes).sha256);
    expect(s.truncated).toBe(false);
    expect(s.readableBytes).toBe(bytes.length);
    expect(s.header).toEqual({ profile: 'ros2', library: 'ferry-qa-corpus' });
    expect(s.messageCount).toBe(messages.length);
    expect(s.startTime).toBe(START_NS);
    expect(s.endTime).toBe(START_NS + 2_000_000_000n);
    expect(s.durationNs).toBe(2e9);
    expect(s.schemas.map((x) => x.name)).toEqual(DEFAULT_TOPICS.map((t) => t.schemaName));
    expect(s.channels).toEqual([
      {
        id: 0,
        topic: '/camera/color',
        schemaId: 1,
        schemaName: 'sensor_msgs/CompressedImage',
        messageEncoding: 'cdr',
        count: 21,
        firstLogTime: START_NS,
        lastLogTime: START_NS + 2_000_000_000n,
        maxGapNs: 100_000_000,
      },
      expect.objectContaining({ id: 1, topic: '/joint_states', count: 201, maxGapNs: 10_000_000 }),
      expect.objectContaining({ id: 2, topic: '/imu', count: 101, maxGapNs: 20_000_000 }),
    ]);
    expect(s.topics.find((t) => t.topic === '/imu')).toMatchObject({
      channelIds: [2],
      count: 101,
      maxGapNs: 20_000_000,
    });
    expect(s.chunks).toMatchObject({ chunks: 10, byCompression: { zstd: { chunks: 10 } } });
    expect(s.chunks.uncompressedBytes).toBeGreaterThan(s.chunks.compressedBytes);
    expect(s.crc).toEqual({ dataSection: 'ok', summary: 'ok', chunksChecked: 10, chunksWithoutCrc: 0 });
    expect(s.statistics?.messageCount).toBe(BigInt(messages.length));
  });

  it('gives identical results for any split of the input, down to one byte at a time', async () => {
    const bytes = await writeRecording({ compression: 'lz4', chunkSize: 3000 });
    const whole = await scan(bytes, bytes.length);
    for (const pieceBytes of [1, 2, 8, 9, 10, 333]) expect(await scan(bytes, pieceBytes)).toEqual(whole);
  });

  it('keeps its window bounded by the largest record, not the file', async () => {
    const bytes = await writeRecording({ chunkSize: 16 * 1024, durationSec: 20 });
    const largest = Math.max(...listRecords(bytes).map((r) => RECORD_PREFIX + r.length));
    const scanner = new McapScanner({ decompressors: await loadDecompressors() });
    const digest = new InlineDigest();
    for await (const piece of streamOf(bytes, 1000)) {
      scanner.push(piece);
      digest.update(piece, scanner.dataEndOffset);
      expect(scanner.windowBytes).toBeLessThanOrEqual(Math.max(64 * 1024, 2 * largest));
    }
    expect(bytes.length).toBeGreaterThan(10 * scanner.windowBytes);
    expect(scanner.finish(await digest.finish()).errorCount).toBe(0);
  });

  it('records where a truncated file stops being readable', async () => {
    const bytes = await writeRecording();
    const chunk = nth(bytes, Op.CHUNK, 3);
    const s = await scan(bytes.subarray(0, chunk.offset + 100));
    expect(s.truncated).toBe(true);
    expect(s.readableBytes).toBe(chunk.offset);
    expect(s.chunks.chunks).toBe(3);
    expect(s.findings[0]!.message).toBe(
      `file ends inside the Chunk record at offset ${chunk.offset} (100 of its ${RECORD_PREFIX + chunk.length} bytes present); readable up to offset ${chunk.offset} of ${chunk.offset + 100} bytes`,
    );
  });
});

describe('records the writers did not expect', () => {
  async function writeWith(compression: string) {
    const { buffer, writer } = await writerWithOneMessage({
      compressChunk: (data) => ({ compression, compressedData: data }),
    });
    await writer.end();
    return buffer.get();
  }

  it('reports an unsupported chunk compression and goes on to the summary', async () => {
    const bytes = await writeWith('brotli');
    const s = await scan(bytes);
    const chunk = nth(bytes, Op.CHUNK);
    expect(s.findings[0]).toEqual({
      severity: 'error',
      code: 'chunk_compression',
      message: `chunk 0 (offset ${chunk.offset}) uses unsupported compression "brotli"; its records were not read`,
      offset: chunk.offset,
    });
    expect(s.crc.summary).toBe('ok');
  });

  it('allows schema 0 (no schema) on a channel', async () => {
    const s = await scan(await writeWith(''));
    expect(s.errorCount).toBe(0);
    expect(s.channels[0]).toMatchObject({ schemaId: 0, schemaName: null, count: 1 });
  });

  it('skips a record over the size limit unread, says so, and keeps scanning', async () => {
    const bytes = await writeRecording();
    const chunk = nth(bytes, Op.CHUNK);
    const s = await scanMcap(streamOf(bytes), { digest: 'inline', maxRecordBytes: 1000 });
    expect(s.findings[0]!.message).toBe(
      `Chunk record at offset ${chunk.offset} declares ${chunk.length} bytes, more than the 1000-byte limit; skipped unread`,
    );
    expect(s.truncated).toBe(false);
    expect(s.crc.summary).toBe('ok');
  });

  it('reports a record length corrupted past the end of the file exactly, then how far the file was readable', async () => {
    const bytes = await writeRecording();
    const chunk = nth(bytes, Op.CHUNK, 1);
    const damaged = withBytes(bytes, chunk.offset + 8, (v) => v.setUint8(0, 0x01)); // top byte of the length
    const declared = BigInt(chunk.length) + 2n ** 56n;
    const s = await scan(damaged);
    expect(s.findings.map((f) => f.message).slice(0, 2)).toEqual([
      `Chunk record at offset ${chunk.offset} declares ${declared} bytes, more than the 268435456-byte limit; skipped unread`,
      `file ends inside the Chunk record at offset ${chunk.offset} (${bytes.length - chunk.offset} of its ${declared + 9n} bytes present); readable up to offset ${chunk.offset} of ${bytes.length} bytes`,
    ]);
    expect(s.truncated).toBe(true);
  });

  it('warns about, but does not fail on, private records', async () => {
    const { buffer, writer, channelId } = await writerWithOneMessage();
    await writer.addMetadata({ name: 'before', metadata: new Map() }); // written at once; the chunk is still open
    const privateAt = Number(buffer.position());
    await buffer.write(Uint8Array.of(0x80, 3, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3));
    await writer.addMessage({ channelId, sequence: 1, logTime: 2n, publishTime: 2n, data: new Uint8Array(4) });
    await writer.end();
    const s = await scan(fixCrcs(buffer.get())); // the writer's data-section CRC did not see the private record
    expect(s.findings).toEqual([
      {
        severity: 'warning',
        code: 'record_unknown',
        message: `private record opcode 0x80 at offset ${privateAt} (3 bytes) skipped`,
        offset: privateAt,
      },
    ]);
    expect(s.messageCount).toBe(2);
  });

  it('fails on a record with opcode 0 inside a chunk, as it does outside one', async () => {
    const bytes = await writeRecording({ compression: 'none' });
    const chunk = nth(bytes, Op.CHUNK, 1);
    const first = chunkRecordsStart(bytes, chunk);
    const opcode = bytes[first];
    const damaged = fixCrcs(
      fixChunkCrc(
        withBytes(bytes, first, (v) => v.setUint8(0, 0)),
        chunk,
      ),
    );
    const s = await scan(damaged);
    expect(opcode).not.toBe(0);
    expect(s.findings).toContainEqual({
      severity: 'error',
      code: 'record_unknown',
      message: expect.stringMatching(/^record at byte 0 of .* has opcode 0x00, which is invalid$/),
      offset: chunk.offset,
    });
  });

  it("catches @mcap/core's writer indexing metadata at the wrong offset after unchunked messages", async () => {
    // McapWriter takes the MetadataIndex offset before flushing the records buffered ahead of the Metadata.
    const { buffer, writer } = await writerWithOneMessage({ useChunks: false });
    await writer.addMetadata({ name: 'robot', metadata: new Map() });
    await writer.end();
    const bytes = buffer.get();
    const index = nth(bytes, Op.METADATA_INDEX);
    const s = await scan(bytes);
    expect(s.findings.map((f) => f.message)).toEqual([
      `MetadataIndex at offset ${index.offset} points at offset ${nth(bytes, Op.CHANNEL).offset}, where no Metadata record starts`,
    ]);
  });

  it('reports a channel id redefined with a different topic', async () => {
    const { buffer, writer, channelId } = await writerWithOneMessage();
    await writer.addMetadata({ name: 'flush', metadata: new Map() });
    const conflictAt = Number(buffer.position());
    const builder = new McapRecordBuilder();
    builder.writeChannel({ id: channelId, schemaId: 0, topic: '/b', messageEncoding: 'json', metadata: new Map() });
    await buffer.write(builder.buffer);
    await writer.end();
    // The writer's chunk (holding the first definition, "/a") is written at end(), after the injected "/b".
    const bytes = fixCrcs(buffer.get());
    const chunk = nth(bytes, Op.CHUNK);
    expect(nth(bytes, Op.CHANNEL).offset).toBe(conflictAt);
    const s = await scan(bytes);
    expect(s.findings.map((f) => f.message)).toContain(
      `Channel 0 redefined in chunk 0 (offset ${chunk.offset}) with a different topic ("/a", was "/b")`,
    );
  });

  it('reports a chunk index pointing where no chunk starts, and the chunk left without an index', async () => {
    const bytes = await writeRecording();
    const index = nth(bytes, Op.CHUNK_INDEX, 2);
    const chunk = nth(bytes, Op.CHUNK, 2);
    const s = await scan(
      fixCrcs(
        withBytes(bytes, index.offset + RECORD_PREFIX + 16, (v) => v.setBigUint64(0, BigInt(chunk.offset + 1), true)),
      ),
    );
    expect(s.findings.map((f) => f.message)).toEqual([
      `ChunkIndex at offset ${index.offset} points at offset ${chunk.offset + 1}, where no Chunk record starts`,
      `chunk 2 (offset ${chunk.offset}) has no ChunkIndex in the summary`,
    ]);
  });

  it('reports bytes after the trailing magic', async () => {
    const bytes = await writeRecording();
    const s = await scan(Buffer.concat([bytes, MCAP_MAGIC]));
    expect(s.findings).toEqual([
      {
        severity: 'error',
        code: 'trailing_bytes',
        message: `8 bytes follow the trailing magic (which ends at offset ${bytes.length})`,
        offset: bytes.length,
      },
    ]);
  });

  it('gives up parsing something that is not an MCAP, but still hashes it', async () => {
    const junk = new TextEncoder().encode('PK\u0003\u0004 this is a zip file, not a recording at all'.repeat(50));
    const s = await scan(junk);
    expect(s.sha256).toBe(expectedOf(junk).sha256);
    expect(codes(s)).toEqual(['error:leading_magic', 'error:header_missing']);
  });
});

describe('attachments and metadata', () => {
  async function withAttachment() {
    const { buffer, writer } = await writerWithOneMessage();
    await writer.addAttachment({
      name: 'calibration.yaml',
      mediaType: 'application/yaml',
      logTime: 2n,
      createTime: 2n,
      data: new TextEncoder().encode('fx: 600\nfy: 600\n'),
    });
    await writer.addMetadata({ name: 'robot', metadata: new Map([['serial', 'R-17']]) });
    await writer.end();
    return buffer.get();
  }

  it('checks their CRCs and indexes', async () => {
    const bytes = await withAttachment();
    const s = await scan(bytes);
    expect(s.findings).toEqual([]);
    expect([s.attachmentCount, s.metadataCount]).toEqual([1, 1]);
  });

  it('reports an attachment whose data changed', async () => {
    const bytes = await withAttachment();
    const attachment = nth(bytes, Op.ATTACHMENT);
    const s = await scan(fixCrcs(withBytes(bytes, attachment.end - 8, (v) => v.setUint8(0, 0x21))));
    expect(s.findings.map((f) => f.message)).toEqual([
      expect.stringMatching(
        new RegExp(
          `^Attachment "calibration.yaml" at offset ${attachment.offset} fails its CRC: record says 0x[0-9a-f]{8}, content gives 0x[0-9a-f]{8}$`,
        ),
      ),
    ]);
  });
});

describe('lz4 frames for the corpus', () => {
  it('round-trips through the lz4 decoder', async () => {
    const lz4 = (await loadDecompressors()).lz4!;
    const data = new TextEncoder().encode(`${'joint_states '.repeat(10_000)}tail`);
    const packed = lz4FrameCompress(data);
    expect(packed.length).toBeLessThan(data.length / 10);
    expect(Buffer.from(lz4(packed, data.length))).toEqual(Buffer.from(data));
  });
});

describe('claims that disagree with the bytes', () => {
  const u64At = (bytes: Uint8Array, at: number) => new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(at, true);
  const messages = (s: Awaited<ReturnType<typeof scan>>) => s.findings.map((f) => f.message);

  it('reports a chunk that does not decompress, and goes on to the next', async () => {
    const bytes = await writeRecording({ compression: 'zstd' });
    const chunk = nth(bytes, Op.CHUNK, 1);
    // Content: start, end, uncompressed size (8 each), crc (4), "zstd" (4 + 4), records length (8), then the frame.
    const frameAt = chunk.offset + RECORD_PREFIX + 44;
    const s = await scan(fixCrcs(withBytes(bytes, frameAt, (v) => v.setUint32(0, 0xdeadbeef))));
    expect(s.findings[0]).toEqual({
      severity: 'error',
      code: 'chunk_decompress',
      message: `chunk 1 (offset ${chunk.offset}) does not decompress (zstd): zstd: data does not decode`,
      offset: chunk.offset,
    });
    expect(s.crc.chunksChecked).toBe(9);
  });

  it('reports a chunk whose time range is not that of its messages', async () => {
    const bytes = await writeRecording();
    const chunk = nth(bytes, Op.CHUNK, 1);
    const [start, end] = [u64At(bytes, chunk.offset + 9), u64At(bytes, chunk.offset + 17)];
    const s = await scan(fixCrcs(withBytes(bytes, chunk.offset + 17, (v) => v.setBigUint64(0, end + 1n, true))));
    expect(messages(s)).toEqual([
      `chunk 1 (offset ${chunk.offset}) says its messages span ${start}–${end + 1n}, they span ${start}–${end}`,
      `ChunkIndex at offset ${nth(bytes, Op.CHUNK_INDEX, 1).offset} disagrees with chunk 1 (offset ${chunk.offset}), index vs chunk: message_end_time ${end} vs ${end + 1n}`,
    ]);
  });

  it('reports a chunk whose records are not its declared uncompressed size', async () => {
    const bytes = await writeRecording();
    const chunk = nth(bytes, Op.CHUNK, 2);
    const size = u64At(bytes, chunk.offset + 25);
    const s = await scan(fixCrcs(withBytes(bytes, chunk.offset + 25, (v) => v.setBigUint64(0, size + 1n, true))));
    expect(messages(s)[0]).toBe(
      `chunk 2 (offset ${chunk.offset}) holds ${size} uncompressed bytes but its header says uncompressed_size ${size + 1n}`,
    );
    expect(codes(s)).toEqual(['error:chunk_size', 'error:chunk_index']);
  });

  it('reports Footer offsets that do not point where the sections start', async () => {
    const bytes = await writeRecording();
    const footer = nth(bytes, Op.FOOTER);
    const summaryStart = nth(bytes, Op.DATA_END).end;
    const offsetStart = Number(u64At(bytes, footer.offset + 17));
    const s = await scan(
      fixCrcs(
        withBytes(bytes, footer.offset + RECORD_PREFIX, (v) => {
          v.setBigUint64(0, 5n, true);
          v.setBigUint64(8, BigInt(offsetStart + 1), true);
        }),
      ),
    );
    expect(messages(s)).toEqual([
      `Footer.summary_start is 5, the summary section starts at offset ${summaryStart}`,
      `Footer.summary_offset_start is ${offsetStart + 1}, the summary offset section starts at offset ${offsetStart}`,
    ]);
  });

  it('reports a summary offset that misstates its group', async () => {
    const bytes = await writeRecording();
    const summaryOffset = nth(bytes, Op.SUMMARY_OFFSET);
    const groupAt = summaryOffset.offset + RECORD_PREFIX + 1;
    const [start, length] = [u64At(bytes, groupAt), u64At(bytes, groupAt + 8)];
    const opcode = bytes[groupAt - 1]!;
    const s = await scan(fixCrcs(withBytes(bytes, groupAt + 8, (v) => v.setBigUint64(0, length + 1n, true))));
    expect(opcode).toBe(Op.SCHEMA);
    expect(messages(s)).toEqual([
      `SummaryOffset at offset ${summaryOffset.offset} gives the Schema group as ${start}+${length + 1n}, the summary has it at ${start}+${length}`,
    ]);
  });

  it('reports a summary copy of a channel that differs from the data section', async () => {
    const bytes = await writeRecording();
    const summaryChannel = recordsOf(bytes, Op.CHANNEL).find((r) => r.offset > nth(bytes, Op.DATA_END).offset)!;
    const s = await scan(
      fixCrcs(withBytes(bytes, summaryChannel.offset + RECORD_PREFIX + 2, (v) => v.setUint16(0, 7, true))),
    );
    expect(messages(s)).toEqual([
      `Channel 0 in the summary at offset ${summaryChannel.offset} differs from its data-section record: schema id (7, was 1)`,
    ]);
  });

  it('reports a record whose fields overrun it, and reads on', async () => {
    const bytes = await writeRecording();
    // Header content: profile (u32 length + "ros2"), library; claim a 1000-byte profile.
    const s = await scan(fixCrcs(withBytes(bytes, 8 + RECORD_PREFIX, (v) => v.setUint32(0, 1000, true))));
    expect(messages(s)).toEqual([
      `Header record at offset 8 is malformed: Header.profile needs 1000 bytes, only ${nth(bytes, Op.HEADER).length - 4} left in the record`,
    ]);
    expect(s.messageCount).toBe(plannedMessages(DEFAULT_TOPICS, 2).length);
  });
});
