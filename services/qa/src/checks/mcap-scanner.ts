import { crc32 } from 'node:zlib';
import type { Decompressors } from './decompressors.js';
import {
  type AttachmentIndexRecord,
  type ChannelRecord,
  type ChunkIndexRecord,
  FOOTER_CONTENT_LENGTH,
  FOOTER_CRC_COVERED,
  type FooterRecord,
  type HeaderRecord,
  hex,
  isPrivateOpcode,
  MalformedRecordError,
  MCAP_MAGIC,
  MESSAGE_FIXED,
  type MetadataIndexRecord,
  Op,
  opName,
  RECORD_PREFIX,
  readAttachment,
  readAttachmentIndex,
  readChannel,
  readChunkHeader,
  readChunkIndex,
  readDataEnd,
  readFooter,
  readHeader,
  readMetadataIndex,
  readMetadataName,
  readSchema,
  readStatistics,
  readSummaryOffset,
  type SchemaRecord,
  type StatisticsRecord,
  type SummaryOffsetRecord,
  sameBytes,
  sameStringMap,
} from './mcap-records.js';
import type { CompressionStats, CrcStatus, McapScan, OrderViolation } from './mcap-scan.types.js';
import { FindingLog } from './scan-findings.js';
import type { ChannelState, ChunkState, PassSnapshot, SchemaState, TopicState } from './scan-state.js';
import type { DigestResult } from './stream-digest.js';
import { crossCheckSummary } from './summary-cross-checks.js';

export interface McapScannerOptions {
  decompressors: Decompressors;
  /**
   * Largest record (and largest uncompressed chunk) the scanner holds in memory, in bytes. Default 256 MiB.
   * Memory is bounded by about twice this; a larger record is skipped unread with a `record_too_large` error.
   */
  maxRecordBytes?: number;
  /** Findings kept per code (all are counted). Default 20. */
  maxFindingsPerCode?: number;
}

export const DEFAULT_MAX_RECORD_BYTES = 256 * 1024 * 1024;
const TWO_32 = 4294967296;
const PHASE_MAGIC = 0;
const PHASE_RECORDS = 1;
const PHASE_TRAILING_MAGIC = 2;
const PHASE_END = 3;
/** Not an MCAP (bad magic and no Header): the rest is only hashed. */
const PHASE_OPAQUE = 4;

const SUMMARY_OPS = new Set<number>([
  Op.SCHEMA,
  Op.CHANNEL,
  Op.CHUNK_INDEX,
  Op.ATTACHMENT_INDEX,
  Op.METADATA_INDEX,
  Op.STATISTICS,
]);

const earlier = (a: bigint, b: bigint) => (b < a ? b : a);
const later = (a: bigint, b: bigint) => (b > a ? b : a);
const u64 = (hi: number, lo: number) => (BigInt(hi) << 32n) | BigInt(lo);
const crcHex = (n: number) => `0x${n.toString(16).padStart(8, '0')}`;
const isBelow = (hi: number, lo: number, refHi: number, refLo: number) => hi < refHi || (hi === refHi && lo < refLo);

/**
 * An incremental MCAP parser over a growing window: push() takes the file's bytes in pieces of any size, parses
 * every complete record straight from the piece (no copy) and keeps only the incomplete tail, so memory stays
 * bounded by the largest record. It checks what `mcap doctor` and @mcap/core's readers check, and more: see
 * docs/qa.md. Damage becomes findings; parsing goes on wherever record framing survives.
 */
export class McapScanner {
  readonly #decompressors: Decompressors;
  readonly #maxRecord: number;

  // Framing
  #phase = PHASE_MAGIC;
  /** File offset of the first byte not yet consumed; the pending bytes start here. */
  #pos = 0;
  #received = 0;
  #pending = new Uint8Array(64 * 1024);
  #pendingLen = 0;
  #skipLeft = 0;
  /** The record being skipped; `declared` is its length field exactly as written (it may exceed 2^53). */
  #skipped: { offset: number; opcode: number; declared: bigint } | null = null;
  #firstRecordSeen = false;
  /** End offset of the last whole unit (magic or record) consumed: how far the file was readable. */
  #lastUnitEnd = 0;
  #leadingMagicOk = true;
  #trailingBytes = 0;
  #inSummary = false;
  #inSummaryOffsets = false;

  /** Where the DataEnd record starts (the data-section CRC stops there); Infinity until its opcode is seen. */
  dataEndOffset = Number.POSITIVE_INFINITY;
  #dataEnd: { offset: number; end: number; crc: number } | null = null;
  #summaryCrc = 0;
  #footer: (FooterRecord & { offset: number; computedCrc: number | null }) | null = null;
  #header: HeaderRecord | null = null;

  // Definitions
  #channels: (ChannelState | undefined)[] = new Array(65536);
  #channelList: ChannelState[] = [];
  #topics = new Map<string, TopicState>();
  #schemas = new Map<number, SchemaState>();

  // Messages
  #messageCount = 0;
  #orphans = 0;
  #minHi = -1;
  #minLo = 0;
  #maxHi = -1;
  #maxLo = 0;
  #topLevel = { count: 0, maxHi: 0, maxLo: 0, topic: '', violation: null as OrderViolation | null };

  // Chunks and the message index records that follow each
  #chunks: ChunkState[] = [];
  #chunksByOffset = new Map<number, ChunkState>();
  #openChunk: ChunkState | null = null;
  #byCompression: Record<string, CompressionStats> = {};
  #chunksCrcChecked = 0;
  #chunksWithoutCrc = 0;
  #chunksWithoutMessageIndex = 0;
  // The current chunk's messages, for comparing with its message index records.
  #msgOffset = new Uint32Array(1024);
  #msgChannel = new Uint16Array(1024);
  #msgHi = new Uint32Array(1024);
  #msgLo = new Uint32Array(1024);
  #msgIndexed = new Uint8Array(1024);
  #chunkMsgs = 0;

  // Attachments, metadata and the summary section
  #attachments = new Map<number, AttachmentIndexRecord>();
  #metadata = new Map<number, { length: number; name: string }>();
  #statistics: StatisticsRecord | null = null;
  #chunkIndexes: { record: ChunkIndexRecord; offset: number }[] = [];
  #attachmentIndexes: { record: AttachmentIndexRecord; offset: number }[] = [];
  #metadataIndexes: { record: MetadataIndexRecord; offset: number }[] = [];
  #summaryOffsets: { record: SummaryOffsetRecord; offset: number }[] = [];
  #summaryGroups = new Map<number, { start: number; end: number; count: number }>();
  #lastSummaryOp = -1;
  #summaryStart = -1;
  #summaryOffsetStart = -1;

  readonly #log: FindingLog;

  constructor(options: McapScannerOptions) {
    this.#decompressors = options.decompressors;
    this.#maxRecord = Math.min(options.maxRecordBytes ?? DEFAULT_MAX_RECORD_BYTES, 2 ** 31);
    this.#log = new FindingLog(options.maxFindingsPerCode ?? 20);
  }

  get bytesReceived(): number {
    return this.#received;
  }

  /** Bytes held for records that straddle pieces: the scanner's memory, bounded by the largest record. */
  get windowBytes(): number {
    return this.#pending.byteLength;
  }

  /** Parses as much of the file as `piece` completes. Synchronous: no await per record. */
  push(piece: Uint8Array): void {
    this.#received += piece.byteLength;
    const n = piece.byteLength;
    let p = 0;
    while (p < n) {
      if (this.#skipLeft > 0) {
        const k = Math.min(this.#skipLeft, n - p);
        this.#skipLeft -= k;
        this.#pos += k;
        p += k;
        if (this.#skipLeft === 0) this.#endSkip();
        continue;
      }
      if (this.#phase === PHASE_END || this.#phase === PHASE_OPAQUE) {
        if (this.#phase === PHASE_END) this.#trailingBytes += n - p;
        this.#pos += n - p;
        return;
      }
      p = this.#pendingLen > 0 ? this.#feedPending(piece, p) : this.#parseDirect(piece, p);
    }
  }

  /** Parses whole units straight from `buf` from index p; stashes an incomplete tail. Returns the new index. */
  #parseDirect(buf: Uint8Array, p: number): number {
    const n = buf.byteLength;
    const dv = new DataView(buf.buffer, buf.byteOffset, n);
    while (p < n) {
      if (this.#phase === PHASE_MAGIC || this.#phase === PHASE_TRAILING_MAGIC) {
        if (n - p < MCAP_MAGIC.length) return this.#stash(buf, p);
        this.#magic(buf.subarray(p, p + MCAP_MAGIC.length));
        p += MCAP_MAGIC.length;
        // #magic() moved the phase on (to records, or to the end after the trailing magic).
        if ((this.#phase as number) !== PHASE_RECORDS) return p;
        continue;
      }
      if (this.#phase !== PHASE_RECORDS || this.#skipLeft > 0) return p;
      if (n - p < RECORD_PREFIX) return this.#stash(buf, p);
      const opcode = buf[p]!;
      this.#noteRecordStart(opcode);
      if ((this.#phase as number) !== PHASE_RECORDS) return p;
      const length = this.#recordLength(dv, p + 1);
      if (length > this.#maxRecord) {
        this.#startSkip(opcode, dv.getBigUint64(p + 1, true));
        const k = Math.min(n - p, RECORD_PREFIX + length);
        this.#skipLeft = RECORD_PREFIX + length - k;
        this.#pos += k;
        if (this.#skipLeft === 0) this.#endSkip();
        p += k;
        continue;
      }
      if (n - p < RECORD_PREFIX + length) return this.#stash(buf, p);
      this.#record(buf, dv, p, opcode, length);
      p += RECORD_PREFIX + length;
      this.#pos += RECORD_PREFIX + length;
      this.#lastUnitEnd = this.#pos;
    }
    return p;
  }

  #endSkip(): void {
    this.#skipped = null;
    this.#lastUnitEnd = this.#pos;
  }

  #stash(buf: Uint8Array, p: number): number {
    const rest = buf.byteLength - p;
    if (this.#phase === PHASE_RECORDS) this.#noteRecordStart(buf[p]!);
    if ((this.#phase as number) === PHASE_OPAQUE) return buf.byteLength;
    this.#ensurePending(rest);
    this.#pending.set(buf.subarray(p), 0);
    this.#pendingLen = rest;
    return buf.byteLength;
  }

  #ensurePending(size: number): void {
    if (this.#pending.byteLength >= size) return;
    const grown = new Uint8Array(Math.max(size, this.#pending.byteLength * 2));
    grown.set(this.#pending.subarray(0, this.#pendingLen));
    this.#pending = grown;
  }

  /** Adds bytes to the unit that started in an earlier piece; consumes it once complete. */
  #feedPending(buf: Uint8Array, p: number): number {
    const magicPhase = this.#phase === PHASE_MAGIC || this.#phase === PHASE_TRAILING_MAGIC;
    let need = magicPhase ? MCAP_MAGIC.length : RECORD_PREFIX;
    let length = 0;
    if (!magicPhase && this.#pendingLen >= RECORD_PREFIX) {
      length = this.#recordLength(new DataView(this.#pending.buffer, 0, RECORD_PREFIX), 1);
      need = RECORD_PREFIX + length;
    }
    const take = Math.min(need - this.#pendingLen, buf.byteLength - p);
    this.#ensurePending(this.#pendingLen + take);
    this.#pending.set(buf.subarray(p, p + take), this.#pendingLen);
    this.#pendingLen += take;
    p += take;
    if (this.#pendingLen < need) return p;

    if (magicPhase) {
      this.#pendingLen = 0;
      this.#magic(this.#pending.subarray(0, MCAP_MAGIC.length));
      return p;
    }
    const opcode = this.#pending[0]!;
    if (need === RECORD_PREFIX) {
      // Only the prefix so far: now the length is known.
      length = this.#recordLength(new DataView(this.#pending.buffer, 0, RECORD_PREFIX), 1);
      if (length > this.#maxRecord) {
        this.#pendingLen = 0;
        this.#startSkip(opcode, new DataView(this.#pending.buffer, 0, RECORD_PREFIX).getBigUint64(1, true));
        this.#skipLeft = length;
        this.#pos += RECORD_PREFIX;
        return p;
      }
      if (length > 0) return p;
    }
    this.#pendingLen = 0;
    const view = new DataView(this.#pending.buffer, 0, RECORD_PREFIX + length);
    this.#record(this.#pending, view, 0, opcode, length);
    this.#pos += RECORD_PREFIX + length;
    this.#lastUnitEnd = this.#pos;
    return p;
  }

  #recordLength(dv: DataView, at: number): number {
    const hi = dv.getUint32(at + 4, true);
    // Lengths past 2^53 cannot be real; treat them as "too large" rather than lose precision.
    return hi >= 0x200000 ? Number.MAX_SAFE_INTEGER : hi * TWO_32 + dv.getUint32(at, true);
  }

  /** Sees each record's opcode as soon as its first byte arrives (possibly twice). */
  #noteRecordStart(opcode: number): void {
    if (!this.#firstRecordSeen) {
      this.#firstRecordSeen = true;
      if (opcode !== Op.HEADER) {
        this.#log.error(
          'header_missing',
          `first record at offset ${this.#pos} is ${opName(opcode)}, not a Header`,
          this.#pos,
        );
        // Neither magic nor Header: not an MCAP at all. Hash the rest, but parse nothing more.
        if (!this.#leadingMagicOk) this.#phase = PHASE_OPAQUE;
      }
    }
    if (opcode === Op.DATA_END && !this.#inSummary && this.dataEndOffset === Number.POSITIVE_INFINITY) {
      this.dataEndOffset = this.#pos;
    }
  }

  #startSkip(opcode: number, declared: bigint): void {
    this.#closeChunkGroup();
    this.#skipped = { offset: this.#pos, opcode, declared };
    this.#log.error(
      'record_too_large',
      `${opName(opcode)} record at offset ${this.#pos} declares ${declared} bytes, more than the ${this.#maxRecord}-byte limit; skipped unread`,
      this.#pos,
    );
  }

  #magic(bytes: Uint8Array): void {
    const ok = sameBytes(bytes, MCAP_MAGIC);
    if (this.#phase === PHASE_MAGIC) {
      if (!ok) {
        this.#leadingMagicOk = false;
        this.#log.error(
          'leading_magic',
          `file starts with ${hex(bytes)} instead of the MCAP magic ${hex(MCAP_MAGIC)}`,
          0,
        );
      }
      this.#phase = PHASE_RECORDS;
    } else {
      if (!ok) {
        this.#log.error(
          'trailing_magic',
          `file ends with ${hex(bytes)} at offset ${this.#pos} instead of the MCAP magic ${hex(MCAP_MAGIC)}`,
          this.#pos,
        );
      }
      this.#phase = PHASE_END;
    }
    this.#pos += MCAP_MAGIC.length;
    this.#lastUnitEnd = this.#pos;
  }

  // ---------------------------------------------------------------------------------------------------------
  // Records

  #record(buf: Uint8Array, dv: DataView, at: number, opcode: number, length: number): void {
    const offset = this.#pos;
    const start = at + RECORD_PREFIX;
    const end = start + length;
    if (opcode !== Op.MESSAGE_INDEX) this.#closeChunkGroup();
    if (this.#inSummary && opcode !== Op.FOOTER && !this.#summaryRecord(buf, at, opcode, length, offset)) return;
    try {
      switch (opcode) {
        case Op.HEADER:
          if (this.#header) this.#log.error('header_duplicate', `second Header record at offset ${offset}`, offset);
          else this.#onHeader(readHeader(buf, start, end), offset);
          return;
        case Op.FOOTER:
          this.#onFooter(buf, at, length, offset);
          return;
        case Op.SCHEMA:
          this.#onSchema(readSchema(buf, start, end), offset, null);
          return;
        case Op.CHANNEL:
          this.#onChannel(readChannel(buf, start, end), offset, null);
          return;
        case Op.MESSAGE:
          this.#onTopLevelMessage(dv, at, length, offset);
          return;
        case Op.CHUNK:
          this.#onChunk(buf, start, end, offset, length);
          return;
        case Op.MESSAGE_INDEX:
          this.#onMessageIndex(dv, start, end, offset);
          return;
        case Op.ATTACHMENT:
          this.#onAttachment(buf, start, end, offset, length);
          return;
        case Op.METADATA:
          this.#dataOnly(opcode, offset);
          this.#metadata.set(offset, { length: RECORD_PREFIX + length, name: readMetadataName(buf, start, end) });
          return;
        case Op.DATA_END:
          this.#onDataEnd(buf, start, end, offset, length);
          return;
        case Op.CHUNK_INDEX:
          this.#summaryOnly(opcode, offset);
          this.#chunkIndexes.push({ record: readChunkIndex(buf, start, end), offset });
          return;
        case Op.ATTACHMENT_INDEX:
          this.#summaryOnly(opcode, offset);
          this.#attachmentIndexes.push({ record: readAttachmentIndex(buf, start, end), offset });
          return;
        case Op.METADATA_INDEX:
          this.#summaryOnly(opcode, offset);
          this.#metadataIndexes.push({ record: readMetadataIndex(buf, start, end), offset });
          return;
        case Op.STATISTICS:
          this.#summaryOnly(opcode, offset);
          if (this.#statistics) {
            this.#log.error('statistics_duplicate', `second Statistics record at offset ${offset}`, offset);
          } else {
            this.#statistics = readStatistics(buf, start, end);
          }
          return;
        case Op.SUMMARY_OFFSET:
          this.#summaryOnly(opcode, offset);
          this.#summaryOffsets.push({ record: readSummaryOffset(buf, start, end), offset });
          return;
        default:
          if (opcode === 0) {
            this.#log.error('record_unknown', `record at offset ${offset} has opcode 0x00, which is invalid`, offset);
          } else {
            this.#log.warn(
              'record_unknown',
              `${isPrivateOpcode(opcode) ? 'private' : 'unknown'} record ${opName(opcode)} at offset ${offset} (${length} bytes) skipped`,
              offset,
            );
          }
      }
    } catch (err) {
      if (!(err instanceof MalformedRecordError)) throw err;
      this.#log.error(
        'record_malformed',
        `${opName(opcode)} record at offset ${offset} is malformed: ${err.message}`,
        offset,
      );
    }
  }

  #dataOnly(opcode: number, offset: number): void {
    if (this.#inSummary) {
      this.#log.error(
        'record_misplaced',
        `${opName(opcode)} record at offset ${offset} is in the summary section`,
        offset,
      );
    }
  }

  #summaryOnly(opcode: number, offset: number): void {
    if (!this.#inSummary) {
      this.#log.error(
        'record_misplaced',
        `${opName(opcode)} record at offset ${offset} is in the data section`,
        offset,
      );
    }
  }

  #onHeader(header: HeaderRecord, offset: number): void {
    this.#header = header;
    if (offset !== MCAP_MAGIC.length) {
      this.#log.error('header_missing', `Header record at offset ${offset} is not the first record`, offset);
    }
    if (header.library === '')
      this.#log.warn('header_library', 'Header.library is empty: the writer is unknown', offset);
    if (header.profile !== '' && !['ros1', 'ros2'].includes(header.profile)) {
      this.#log.warn(
        'header_profile',
        `Header.profile ${JSON.stringify(header.profile)} is not a well-known profile`,
        offset,
      );
    }
  }

  /** Every summary-section record: summary CRC, grouping by opcode, allowed kinds. False for a misplaced one. */
  #summaryRecord(buf: Uint8Array, at: number, opcode: number, length: number, offset: number): boolean {
    this.#summaryCrc = crc32(buf.subarray(at, at + RECORD_PREFIX + length), this.#summaryCrc);
    if (this.#summaryStart < 0) this.#summaryStart = offset;
    if (opcode === Op.SUMMARY_OFFSET) {
      if (!this.#inSummaryOffsets) this.#summaryOffsetStart = offset;
      this.#inSummaryOffsets = true;
      return true;
    }
    if (this.#inSummaryOffsets || !SUMMARY_OPS.has(opcode)) {
      this.#log.error(
        'record_misplaced',
        `${opName(opcode)} record at offset ${offset} is not allowed in the ${this.#inSummaryOffsets ? 'summary offset' : 'summary'} section`,
        offset,
      );
      return false;
    }
    const group = this.#summaryGroups.get(opcode);
    const recordEnd = offset + RECORD_PREFIX + length;
    if (!group) {
      this.#summaryGroups.set(opcode, { start: offset, end: recordEnd, count: 1 });
    } else {
      if (this.#lastSummaryOp !== opcode) {
        this.#log.error(
          'summary_not_grouped',
          `summary records are not grouped by opcode: ${opName(opcode)} at offset ${offset} follows ${opName(this.#lastSummaryOp)}`,
          offset,
        );
      }
      group.end = recordEnd;
      group.count++;
    }
    this.#lastSummaryOp = opcode;
    return true;
  }

  #onSchema(schema: SchemaRecord, offset: number, chunk: ChunkState | null): void {
    const where = chunk ? `in chunk ${chunk.index} (offset ${chunk.offset})` : `at offset ${offset}`;
    if (schema.id === 0) {
      this.#log.error('schema_invalid', `Schema record ${where} has id 0, which is reserved`, offset);
      return;
    }
    if (schema.encoding === '' && schema.data.byteLength > 0) {
      this.#log.error(
        'schema_invalid',
        `Schema ${schema.id} ${where} has an empty encoding but ${schema.data.byteLength} bytes of data`,
        offset,
      );
    }
    const known = this.#schemas.get(schema.id);
    if (this.#inSummary && !chunk) {
      if (!known?.inData) {
        this.#log.warn(
          'summary_schema',
          `Schema ${schema.id} (${schema.name}) in the summary at offset ${offset} is not in the data section`,
          offset,
        );
      } else if (!this.#sameSchema(known.record, schema)) {
        this.#log.error(
          'summary_schema',
          `Schema ${schema.id} in the summary at offset ${offset} differs from its data-section record`,
          offset,
        );
      }
      if (known) known.inSummary = true;
      else this.#schemas.set(schema.id, { record: this.#ownSchema(schema), inData: false, inSummary: true });
      return;
    }
    if (known) {
      if (!this.#sameSchema(known.record, schema)) {
        this.#log.error(
          'schema_conflict',
          `Schema ${schema.id} redefined ${where} with a different ${this.#schemaDiff(known.record, schema)}`,
          offset,
        );
      }
      known.inData = true;
      return;
    }
    this.#schemas.set(schema.id, { record: this.#ownSchema(schema), inData: true, inSummary: false });
  }

  #ownSchema(schema: SchemaRecord): SchemaRecord {
    // The record may be a view of a buffer about to be reused.
    return { ...schema, data: schema.data.slice() };
  }

  #sameSchema(a: SchemaRecord, b: SchemaRecord): boolean {
    return a.name === b.name && a.encoding === b.encoding && sameBytes(a.data, b.data);
  }

  #schemaDiff(a: SchemaRecord, b: SchemaRecord): string {
    if (a.name !== b.name) return `name (${JSON.stringify(b.name)}, was ${JSON.stringify(a.name)})`;
    if (a.encoding !== b.encoding) return `encoding (${JSON.stringify(b.encoding)}, was ${JSON.stringify(a.encoding)})`;
    return 'data';
  }

  #onChannel(channel: ChannelRecord, offset: number, chunk: ChunkState | null): void {
    const where = chunk ? `in chunk ${chunk.index} (offset ${chunk.offset})` : `at offset ${offset}`;
    const known = this.#channels[channel.id];
    if (this.#inSummary && !chunk) {
      if (!known?.inData) {
        this.#log.warn(
          'summary_channel',
          `Channel ${channel.id} (${channel.topic}) in the summary at offset ${offset} is not in the data section`,
          offset,
        );
      } else if (this.#channelDiff(known, channel)) {
        this.#log.error(
          'summary_channel',
          `Channel ${channel.id} in the summary at offset ${offset} differs from its data-section record: ${this.#channelDiff(known, channel)}`,
          offset,
        );
      }
      if (known) known.inSummary = true;
      else this.#defineChannel(channel, offset, false);
      return;
    }
    if (known) {
      const diff = this.#channelDiff(known, channel);
      if (diff)
        this.#log.error(
          'channel_conflict',
          `Channel ${channel.id} redefined ${where} with a different ${diff}`,
          offset,
        );
      known.inData = true;
      return;
    }
    if (channel.schemaId !== 0 && !this.#schemas.get(channel.schemaId)?.inData) {
      this.#log.error(
        'channel_unknown_schema',
        `Channel ${channel.id} (${channel.topic}) ${where} refers to schema ${channel.schemaId}, which is not defined before it`,
        offset,
      );
    }
    this.#defineChannel(channel, offset, true);
  }

  #channelDiff(known: ChannelState, c: ChannelRecord): string | null {
    if (known.topic !== c.topic) return `topic (${JSON.stringify(c.topic)}, was ${JSON.stringify(known.topic)})`;
    if (known.schemaId !== c.schemaId) return `schema id (${c.schemaId}, was ${known.schemaId})`;
    if (known.messageEncoding !== c.messageEncoding) {
      return `message encoding (${JSON.stringify(c.messageEncoding)}, was ${JSON.stringify(known.messageEncoding)})`;
    }
    if (!sameStringMap(known.metadata, c.metadata)) return 'metadata';
    return null;
  }

  #defineChannel(c: ChannelRecord, offset: number, inData: boolean): void {
    let topicState = this.#topics.get(c.topic);
    if (!topicState) {
      topicState = {
        topic: c.topic,
        channelIds: [],
        count: 0,
        maxHi: -1,
        maxLo: 0,
        maxGap: 0,
        gapEndHi: -1,
        gapEndLo: 0,
      };
      this.#topics.set(c.topic, topicState);
    }
    topicState.channelIds.push(c.id);
    const state: ChannelState = {
      id: c.id,
      topic: c.topic,
      schemaId: c.schemaId,
      messageEncoding: c.messageEncoding,
      metadata: c.metadata,
      definedAt: offset,
      inData,
      inSummary: !inData,
      topicState,
      count: 0,
      minHi: 0,
      minLo: 0,
      maxHi: 0,
      maxLo: 0,
      maxGap: 0,
      outOfOrder: 0,
      violation: null,
      usedInChunk: false,
    };
    this.#channels[c.id] = state;
    this.#channelList.push(state);
  }

  /**
   * One message, wherever it is. Returns the channel (undefined for an undefined one). `place` is only called
   * to word a finding.
   */
  #onMessage(
    channelId: number,
    sequence: number,
    hi: number,
    lo: number,
    place: () => string,
    offset: number,
  ): ChannelState | undefined {
    this.#messageCount++;
    if (this.#minHi < 0 || isBelow(hi, lo, this.#minHi, this.#minLo)) {
      this.#minHi = hi;
      this.#minLo = lo;
    }
    if (this.#maxHi < 0 || isBelow(this.#maxHi, this.#maxLo, hi, lo)) {
      this.#maxHi = hi;
      this.#maxLo = lo;
    }
    const c = this.#channels[channelId];
    if (c === undefined) {
      this.#orphans++;
      this.#log.error(
        'message_unknown_channel',
        `message ${place()} is on channel ${channelId}, which has no Channel record before it (sequence ${sequence}, log time ${u64(hi, lo)})`,
        offset,
      );
      return undefined;
    }
    if (c.count++ === 0) {
      c.minHi = c.maxHi = hi;
      c.minLo = c.maxLo = lo;
    } else if (isBelow(hi, lo, c.maxHi, c.maxLo)) {
      c.outOfOrder++;
      c.violation ??= {
        channelId,
        topic: c.topic,
        sequence,
        logTime: u64(hi, lo),
        previousLogTime: u64(c.maxHi, c.maxLo),
        place: place(),
      };
      if (isBelow(hi, lo, c.minHi, c.minLo)) {
        c.minHi = hi;
        c.minLo = lo;
      }
    } else {
      const gap = (hi - c.maxHi) * TWO_32 + (lo - c.maxLo);
      if (gap > c.maxGap) c.maxGap = gap;
      c.maxHi = hi;
      c.maxLo = lo;
    }
    const t = c.topicState;
    if (t.count++ === 0) {
      t.maxHi = hi;
      t.maxLo = lo;
    } else if (!isBelow(hi, lo, t.maxHi, t.maxLo)) {
      const gap = (hi - t.maxHi) * TWO_32 + (lo - t.maxLo);
      if (gap > t.maxGap) {
        t.maxGap = gap;
        t.gapEndHi = hi;
        t.gapEndLo = lo;
      }
      t.maxHi = hi;
      t.maxLo = lo;
    }
    return c;
  }

  #onTopLevelMessage(dv: DataView, at: number, length: number, offset: number): void {
    this.#dataOnly(Op.MESSAGE, offset);
    if (length < MESSAGE_FIXED) {
      throw new MalformedRecordError(`content is ${length} bytes, a Message needs at least ${MESSAGE_FIXED}`);
    }
    const o = at + RECORD_PREFIX;
    const channelId = dv.getUint16(o, true);
    const sequence = dv.getUint32(o + 2, true);
    const lo = dv.getUint32(o + 6, true);
    const hi = dv.getUint32(o + 10, true);
    const place = () => `at offset ${offset}`;
    const c = this.#onMessage(channelId, sequence, hi, lo, place, offset);
    const top = this.#topLevel;
    if (top.count++ > 0 && isBelow(hi, lo, top.maxHi, top.maxLo)) {
      top.violation ??= {
        channelId,
        topic: c?.topic ?? '',
        sequence,
        logTime: u64(hi, lo),
        previousLogTime: u64(top.maxHi, top.maxLo),
        place: `${place()}, after a message on ${top.topic}`,
      };
    } else {
      top.maxHi = hi;
      top.maxLo = lo;
      top.topic = c?.topic ?? `channel ${channelId}`;
    }
  }

  #onChunk(buf: Uint8Array, start: number, end: number, offset: number, length: number): void {
    this.#dataOnly(Op.CHUNK, offset);
    const index = this.#chunks.length;
    const header = readChunkHeader(buf, start, end);
    const chunk: ChunkState = {
      index,
      offset,
      length: RECORD_PREFIX + length,
      startTime: header.startTime,
      endTime: header.endTime,
      compression: header.compression,
      compressedSize: header.compressedSize,
      uncompressedSize: header.uncompressedSize,
      messages: 0,
      messageIndexOffsets: new Map(),
      messageIndexEntries: new Map(),
      messageIndexLength: 0,
      readable: false,
    };
    this.#chunks.push(chunk);
    this.#chunksByOffset.set(offset, chunk);
    this.#openChunk = chunk;
    this.#chunkMsgs = 0;
    const kind = header.compression || 'none';
    this.#byCompression[kind] ??= { chunks: 0, compressedBytes: 0, uncompressedBytes: 0 };
    const stats = this.#byCompression[kind];
    stats.chunks++;
    stats.compressedBytes += header.compressedSize;
    stats.uncompressedBytes += header.uncompressedSize;
    const at = `chunk ${index} (offset ${offset})`;

    if (header.uncompressedSize > this.#maxRecord) {
      this.#log.error(
        'record_too_large',
        `${at} declares ${header.uncompressedSize} uncompressed bytes, more than the ${this.#maxRecord}-byte limit; its records were not read`,
        offset,
      );
      return;
    }
    const compressed = buf.subarray(header.recordsStart, header.recordsStart + header.compressedSize);
    let records: Uint8Array;
    if (header.compression === '') {
      records = compressed;
    } else {
      const decompress = this.#decompressors[header.compression];
      if (!decompress) {
        this.#log.error(
          'chunk_compression',
          `${at} uses unsupported compression ${JSON.stringify(header.compression)}; its records were not read`,
          offset,
        );
        return;
      }
      try {
        records = decompress(compressed, header.uncompressedSize);
      } catch (err) {
        this.#log.error(
          'chunk_decompress',
          `${at} does not decompress (${header.compression}): ${(err as Error).message}`,
          offset,
        );
        return;
      }
    }
    if (records.byteLength !== header.uncompressedSize) {
      this.#log.error(
        'chunk_size',
        `${at} holds ${records.byteLength} uncompressed bytes but its header says uncompressed_size ${header.uncompressedSize}`,
        offset,
      );
    }
    if (header.uncompressedCrc === 0) {
      this.#chunksWithoutCrc++;
    } else {
      const actual = crc32(records);
      this.#chunksCrcChecked++;
      if (actual !== header.uncompressedCrc) {
        this.#log.error(
          'chunk_crc',
          `${at} fails its CRC: header says ${crcHex(header.uncompressedCrc)}, its ${records.byteLength} uncompressed bytes give ${crcHex(actual)}`,
          offset,
        );
      }
    }
    chunk.readable = true;
    this.#chunkRecords(records, chunk);
  }

  #chunkRecords(records: Uint8Array, chunk: ChunkState): void {
    const dv = new DataView(records.buffer, records.byteOffset, records.byteLength);
    const end = records.byteLength;
    const at = `chunk ${chunk.index} (offset ${chunk.offset})`;
    let minHi = -1;
    let minLo = 0;
    let maxHi = -1;
    let maxLo = 0;
    let o = 0;
    while (o < end) {
      if (end - o < RECORD_PREFIX) {
        this.#log.error('chunk_record', `${at} ends with ${end - o} stray bytes at byte ${o}`, chunk.offset);
        break;
      }
      const opcode = records[o]!;
      const length = this.#recordLength(dv, o + 1);
      if (length > end - o - RECORD_PREFIX) {
        this.#log.error(
          'chunk_record',
          `${opName(opcode)} record at byte ${o} of ${at} declares ${length} bytes, past the chunk's end; rest of the chunk skipped`,
          chunk.offset,
        );
        break;
      }
      if (opcode === Op.MESSAGE) {
        if (length < MESSAGE_FIXED) {
          this.#log.error(
            'chunk_record',
            `Message record at byte ${o} of ${at} is ${length} bytes, too short`,
            chunk.offset,
          );
        } else {
          const channelId = dv.getUint16(o + 9, true);
          const sequence = dv.getUint32(o + 11, true);
          const lo = dv.getUint32(o + 15, true);
          const hi = dv.getUint32(o + 19, true);
          const inChunk = o;
          const c = this.#onMessage(channelId, sequence, hi, lo, () => `in ${at} at byte ${inChunk}`, chunk.offset);
          if (c) c.usedInChunk = true;
          if (minHi < 0 || isBelow(hi, lo, minHi, minLo)) {
            minHi = hi;
            minLo = lo;
          }
          if (maxHi < 0 || isBelow(maxHi, maxLo, hi, lo)) {
            maxHi = hi;
            maxLo = lo;
          }
          this.#rememberMessage(o, channelId, hi, lo);
        }
      } else if (opcode === Op.SCHEMA || opcode === Op.CHANNEL) {
        try {
          if (opcode === Op.SCHEMA) this.#onSchema(readSchema(records, o + 9, o + 9 + length), chunk.offset, chunk);
          else this.#onChannel(readChannel(records, o + 9, o + 9 + length), chunk.offset, chunk);
        } catch (err) {
          if (!(err instanceof MalformedRecordError)) throw err;
          this.#log.error(
            'chunk_record',
            `${opName(opcode)} record at byte ${o} of ${at} is malformed: ${err.message}`,
            chunk.offset,
          );
        }
      } else if (opcode >= Op.HEADER && opcode <= Op.DATA_END) {
        this.#log.error(
          'chunk_record',
          `${opName(opcode)} record at byte ${o} of ${at} is not allowed inside a chunk`,
          chunk.offset,
        );
      } else if (opcode === 0) {
        this.#log.error(
          'record_unknown',
          `record at byte ${o} of ${at} has opcode 0x00, which is invalid`,
          chunk.offset,
        );
      } else {
        this.#log.warn('record_unknown', `${opName(opcode)} record at byte ${o} of ${at} skipped`, chunk.offset);
      }
      o += RECORD_PREFIX + length;
    }
    chunk.messages = this.#chunkMsgs;
    if (this.#chunkMsgs > 0) {
      const observedStart = u64(minHi, minLo);
      const observedEnd = u64(maxHi, maxLo);
      if (observedStart !== chunk.startTime || observedEnd !== chunk.endTime) {
        this.#log.error(
          'chunk_time_range',
          `${at} says its messages span ${chunk.startTime}–${chunk.endTime}, they span ${observedStart}–${observedEnd}`,
          chunk.offset,
        );
      }
    }
  }

  #rememberMessage(offset: number, channelId: number, hi: number, lo: number): void {
    const i = this.#chunkMsgs++;
    if (i === this.#msgOffset.length) {
      const grow = <T extends Uint32Array | Uint16Array | Uint8Array>(a: T, make: (n: number) => T): T => {
        const b = make(a.length * 2);
        b.set(a);
        return b;
      };
      this.#msgOffset = grow(this.#msgOffset, (n) => new Uint32Array(n));
      this.#msgChannel = grow(this.#msgChannel, (n) => new Uint16Array(n));
      this.#msgHi = grow(this.#msgHi, (n) => new Uint32Array(n));
      this.#msgLo = grow(this.#msgLo, (n) => new Uint32Array(n));
      this.#msgIndexed = new Uint8Array(this.#msgOffset.length);
    }
    this.#msgOffset[i] = offset;
    this.#msgChannel[i] = channelId;
    this.#msgHi[i] = hi;
    this.#msgLo[i] = lo;
    this.#msgIndexed[i] = 0;
  }

  #findMessage(offset: number): number {
    let lo = 0;
    let hi = this.#chunkMsgs - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const v = this.#msgOffset[mid]!;
      if (v === offset) return mid;
      if (v < offset) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }

  #topicOf(channelId: number): string {
    const c = this.#channels[channelId];
    return c ? `channel ${channelId} (${c.topic})` : `channel ${channelId}`;
  }

  #onMessageIndex(dv: DataView, start: number, end: number, offset: number): void {
    this.#dataOnly(Op.MESSAGE_INDEX, offset);
    const chunk = this.#openChunk;
    if (!chunk) {
      this.#log.error(
        'message_index_orphan',
        `MessageIndex record at offset ${offset} does not follow a chunk`,
        offset,
      );
      return;
    }
    if (end - start < 6) throw new MalformedRecordError('needs at least 6 bytes');
    const channelId = dv.getUint16(start, true);
    const bytes = dv.getUint32(start + 2, true);
    if (bytes % 16 !== 0 || start + 6 + bytes > end) {
      throw new MalformedRecordError(`records length ${bytes} is not a multiple of 16 within the record`);
    }
    const what = `MessageIndex for ${this.#topicOf(channelId)} at offset ${offset} (after chunk ${chunk.index} at offset ${chunk.offset})`;
    if (chunk.messageIndexOffsets.has(channelId)) {
      this.#log.error('message_index', `${what} repeats an index already given for that channel`, offset);
    }
    chunk.messageIndexOffsets.set(channelId, offset);
    chunk.messageIndexLength += RECORD_PREFIX + (end - start);
    const entries = bytes / 16;
    chunk.messageIndexEntries.set(channelId, (chunk.messageIndexEntries.get(channelId) ?? 0) + entries);
    if (!chunk.readable) return;
    for (let k = 0, o = start + 6; k < entries; k++, o += 16) {
      const lo = dv.getUint32(o, true);
      const hi = dv.getUint32(o + 4, true);
      const offHi = dv.getUint32(o + 12, true);
      const off = offHi === 0 ? dv.getUint32(o + 8, true) : -1;
      const i = off < 0 ? -1 : this.#findMessage(off);
      let problem: string | null = null;
      if (i < 0) {
        problem = `entry ${k} points at byte ${offHi * TWO_32 + dv.getUint32(o + 8, true)} of the chunk, where no message starts`;
      } else if (this.#msgChannel[i] !== channelId) {
        problem = `entry ${k} points at byte ${off}, a message on ${this.#topicOf(this.#msgChannel[i]!)}`;
      } else if (this.#msgHi[i] !== hi || this.#msgLo[i] !== lo) {
        problem = `entry ${k} gives log time ${u64(hi, lo)} for the message at byte ${off}, which has log time ${u64(this.#msgHi[i]!, this.#msgLo[i]!)}`;
      } else if (this.#msgIndexed[i] === 1) {
        problem = `entry ${k} lists the message at byte ${off} a second time`;
      } else {
        this.#msgIndexed[i] = 1;
      }
      if (problem) {
        this.#log.error('message_index', `${what}: ${problem}`, offset);
        return;
      }
    }
  }

  /** After a chunk's trailing message index records: every channel with messages has all of them indexed. */
  #closeChunkGroup(): void {
    const chunk = this.#openChunk;
    if (!chunk) return;
    this.#openChunk = null;
    if (!chunk.readable || chunk.messages === 0) return;
    if (chunk.messageIndexOffsets.size === 0) {
      this.#chunksWithoutMessageIndex++;
      return;
    }
    const perChannel = new Map<number, number>();
    for (let i = 0; i < this.#chunkMsgs; i++) {
      const ch = this.#msgChannel[i]!;
      perChannel.set(ch, (perChannel.get(ch) ?? 0) + 1);
    }
    const at = `chunk ${chunk.index} (offset ${chunk.offset})`;
    for (const [channelId, count] of perChannel) {
      const listed = chunk.messageIndexEntries.get(channelId);
      if (listed === undefined) {
        this.#log.error(
          'message_index',
          `${at} holds ${count} messages on ${this.#topicOf(channelId)} but no MessageIndex record follows for it`,
          chunk.offset,
        );
      } else if (listed !== count) {
        this.#log.error(
          'message_index',
          `MessageIndex for ${this.#topicOf(channelId)} after ${at} lists ${listed} messages, the chunk holds ${count}`,
          chunk.messageIndexOffsets.get(channelId),
        );
      }
    }
    for (const [channelId, listed] of chunk.messageIndexEntries) {
      if (listed > 0 && !perChannel.has(channelId)) {
        this.#log.error(
          'message_index',
          `MessageIndex for ${this.#topicOf(channelId)} after ${at} lists ${listed} messages, the chunk holds none on it`,
          chunk.messageIndexOffsets.get(channelId),
        );
      }
    }
  }

  #onAttachment(buf: Uint8Array, start: number, end: number, offset: number, length: number): void {
    this.#dataOnly(Op.ATTACHMENT, offset);
    const a = readAttachment(buf, start, end);
    this.#attachments.set(offset, {
      offset,
      length: RECORD_PREFIX + length,
      logTime: a.logTime,
      createTime: a.createTime,
      dataSize: a.dataSize,
      name: a.name,
      mediaType: a.mediaType,
    });
    if (a.crc !== 0) {
      const actual = crc32(buf.subarray(start, a.crcCoveredEnd));
      if (actual !== a.crc) {
        this.#log.error(
          'attachment_crc',
          `Attachment ${JSON.stringify(a.name)} at offset ${offset} fails its CRC: record says ${crcHex(a.crc)}, content gives ${crcHex(actual)}`,
          offset,
        );
      }
    }
  }

  #onDataEnd(buf: Uint8Array, start: number, end: number, offset: number, length: number): void {
    if (this.#inSummary) {
      this.#log.error('record_misplaced', `second DataEnd record at offset ${offset}`, offset);
      return;
    }
    this.#closeChunkGroup();
    this.#inSummary = true;
    this.#summaryCrc = 0;
    this.dataEndOffset = offset;
    this.#dataEnd = { offset, end: offset + RECORD_PREFIX + length, crc: readDataEnd(buf, start, end) };
  }

  #onFooter(buf: Uint8Array, at: number, length: number, offset: number): void {
    if (!this.#dataEnd) {
      this.#log.error('data_end_missing', `Footer at offset ${offset} is not preceded by a DataEnd record`, offset);
    }
    if (length !== FOOTER_CONTENT_LENGTH) {
      this.#log.error(
        'footer_malformed',
        `Footer at offset ${offset} has ${length} content bytes, not ${FOOTER_CONTENT_LENGTH}`,
        offset,
      );
    }
    this.#phase = PHASE_TRAILING_MAGIC;
    const footer = readFooter(buf, at + RECORD_PREFIX, at + RECORD_PREFIX + length);
    const computedCrc = this.#inSummary ? crc32(buf.subarray(at, at + FOOTER_CRC_COVERED), this.#summaryCrc) : null;
    this.#footer = { ...footer, offset, computedCrc };
  }

  // ---------------------------------------------------------------------------------------------------------
  // End of input

  /** Call once the source is exhausted, with the digest of the same bytes. */
  finish(digest: DigestResult): McapScan {
    this.#closeChunkGroup();
    const truncated = this.#checkEnding();
    const crc = this.#checkCrcs(digest);
    crossCheckSummary(this.#snapshot(), this.#log);
    return this.#result(digest, truncated, crc);
  }

  #checkEnding(): boolean {
    const total = this.#received;
    const readable = `readable up to offset ${this.#lastUnitEnd} of ${total} bytes`;
    if (this.#phase === PHASE_OPAQUE) return false;
    if (this.#phase === PHASE_MAGIC) {
      this.#log.error('truncated', `file is ${total} bytes, too short for the MCAP magic`, 0);
      return true;
    }
    if (this.#skipped) {
      const s = this.#skipped;
      this.#log.error(
        'truncated',
        `file ends inside the ${opName(s.opcode)} record at offset ${s.offset} (${this.#pos - s.offset} of its ${BigInt(RECORD_PREFIX) + s.declared} bytes present); ${readable}`,
        s.offset,
      );
      return true;
    }
    if (this.#phase === PHASE_RECORDS) {
      if (this.#pendingLen > 0) {
        const opcode = this.#pending[0]!;
        const present =
          this.#pendingLen >= RECORD_PREFIX
            ? `${this.#pendingLen} of its ${RECORD_PREFIX + this.#recordLength(new DataView(this.#pending.buffer, 0, RECORD_PREFIX), 1)} bytes present`
            : `${this.#pendingLen} bytes of its prefix present`;
        this.#log.error(
          'truncated',
          `file ends inside the ${opName(opcode)} record at offset ${this.#pos} (${present}); ${readable}`,
          this.#pos,
        );
      } else {
        this.#log.error(
          'truncated',
          `file ends after the record ending at offset ${this.#pos}, before any Footer; ${readable}`,
          this.#pos,
        );
      }
      if (!this.#dataEnd) this.#log.error('data_end_missing', 'file has no DataEnd record', this.#pos);
      this.#log.error('footer_missing', 'file has no Footer record', this.#pos);
      return true;
    }
    if (this.#phase === PHASE_TRAILING_MAGIC) {
      this.#log.error(
        'truncated',
        this.#pendingLen > 0
          ? `file ends ${this.#pendingLen} bytes into the trailing magic at offset ${this.#pos}; ${readable}`
          : `file ends before the trailing magic at offset ${this.#pos}; ${readable}`,
        this.#pos,
      );
      return true;
    }
    if (this.#trailingBytes > 0) {
      this.#log.error(
        'trailing_bytes',
        `${this.#trailingBytes} bytes follow the trailing magic (which ends at offset ${this.#pos - this.#trailingBytes})`,
        this.#pos - this.#trailingBytes,
      );
    }
    return false;
  }

  #checkCrcs(digest: DigestResult): { dataSection: CrcStatus; summary: CrcStatus } {
    let dataSection: CrcStatus = 'not_checked';
    const dataEnd = this.#dataEnd;
    if (dataEnd && dataEnd.crc === 0) dataSection = 'not_recorded';
    else if (dataEnd) {
      dataSection = digest.dataSectionCrc === dataEnd.crc ? 'ok' : 'mismatch';
      if (dataSection === 'mismatch') {
        this.#log.error(
          'data_section_crc',
          `data section CRC mismatch: DataEnd at offset ${dataEnd.offset} records ${crcHex(dataEnd.crc)}, bytes 0–${dataEnd.offset} give ${crcHex(digest.dataSectionCrc)}`,
          dataEnd.offset,
        );
      }
    }
    let summary: CrcStatus = 'not_checked';
    const footer = this.#footer;
    if (footer && footer.summaryCrc === 0) summary = 'not_recorded';
    else if (footer && footer.computedCrc !== null && dataEnd) {
      summary = footer.computedCrc === footer.summaryCrc ? 'ok' : 'mismatch';
      if (summary === 'mismatch') {
        this.#log.error(
          'summary_crc',
          `summary CRC mismatch: Footer at offset ${footer.offset} records ${crcHex(footer.summaryCrc)}, bytes ${dataEnd.end}–${footer.offset + FOOTER_CRC_COVERED} give ${crcHex(footer.computedCrc)}`,
          footer.offset,
        );
      }
    }
    return { dataSection, summary };
  }

  /** What the end-of-pass cross-checks compare: the summary's claims and what the pass saw. */
  #snapshot(): PassSnapshot {
    return {
      footer: this.#footer,
      dataEnd: this.#dataEnd,
      summaryStart: this.#summaryStart,
      summaryOffsetStart: this.#summaryOffsetStart,
      summaryOffsets: this.#summaryOffsets,
      summaryGroups: this.#summaryGroups,
      chunks: this.#chunks,
      chunksByOffset: this.#chunksByOffset,
      chunkIndexes: this.#chunkIndexes,
      chunksWithoutMessageIndex: this.#chunksWithoutMessageIndex,
      channels: this.#channelList,
      channelById: (id) => this.#channels[id],
      schemas: this.#schemas,
      statistics: this.#statistics,
      messageCount: this.#messageCount,
      startTime: this.#messageCount > 0 ? u64(this.#minHi, this.#minLo) : 0n,
      endTime: this.#messageCount > 0 ? u64(this.#maxHi, this.#maxLo) : 0n,
      attachments: this.#attachments,
      attachmentIndexes: this.#attachmentIndexes,
      metadata: this.#metadata,
      metadataIndexes: this.#metadataIndexes,
    };
  }

  #result(digest: DigestResult, truncated: boolean, crc: { dataSection: CrcStatus; summary: CrcStatus }): McapScan {
    const time = (c: { count: number }, hi: number, lo: number) => (c.count > 0 ? u64(hi, lo) : null);
    const channels = this.#channelList.map((c) => ({
      id: c.id,
      topic: c.topic,
      schemaId: c.schemaId,
      schemaName: c.schemaId === 0 ? null : (this.#schemas.get(c.schemaId)?.record.name ?? null),
      messageEncoding: c.messageEncoding,
      count: c.count,
      firstLogTime: time(c, c.minHi, c.minLo),
      lastLogTime: time(c, c.maxHi, c.maxLo),
      maxGapNs: c.maxGap,
    }));
    const topics = [...this.#topics.values()].map((t) => {
      const own = channels.filter((c) => t.channelIds.includes(c.id) && c.count > 0);
      const firsts = own.map((c) => c.firstLogTime!);
      const lasts = own.map((c) => c.lastLogTime!);
      return {
        topic: t.topic,
        channelIds: [...t.channelIds],
        count: t.count,
        firstLogTime: firsts.length ? firsts.reduce(earlier) : null,
        lastLogTime: lasts.length ? lasts.reduce(later) : null,
        maxGapNs: t.maxGap,
        maxGapEndsAt: t.gapEndHi < 0 ? null : u64(t.gapEndHi, t.gapEndLo),
      };
    });
    const startTime = this.#messageCount > 0 ? u64(this.#minHi, this.#minLo) : null;
    const endTime = this.#messageCount > 0 ? u64(this.#maxHi, this.#maxLo) : null;
    const totals = Object.values(this.#byCompression).reduce(
      (a, s) => ({
        chunks: a.chunks + s.chunks,
        compressedBytes: a.compressedBytes + s.compressedBytes,
        uncompressedBytes: a.uncompressedBytes + s.uncompressedBytes,
      }),
      { chunks: 0, compressedBytes: 0, uncompressedBytes: 0 },
    );
    return {
      bytesRead: digest.bytes,
      sha256: digest.sha256,
      truncated,
      readableBytes: this.#lastUnitEnd,
      header: this.#header,
      schemas: [...this.#schemas.values()].map((s) => ({
        id: s.record.id,
        name: s.record.name,
        encoding: s.record.encoding,
      })),
      channels,
      topics,
      messageCount: this.#messageCount,
      orphanMessages: this.#orphans,
      startTime,
      endTime,
      durationNs: startTime === null || endTime === null ? 0 : Number(endTime - startTime),
      chunks: { ...totals, byCompression: this.#byCompression },
      attachmentCount: this.#attachments.size,
      metadataCount: this.#metadata.size,
      statistics: this.#statistics,
      crc: { ...crc, chunksChecked: this.#chunksCrcChecked, chunksWithoutCrc: this.#chunksWithoutCrc },
      order: {
        outOfOrder: this.#channelList.reduce((n, c) => n + c.outOfOrder, 0),
        firstByChannel: this.#channelList.flatMap((c) => (c.violation ? [c.violation] : [])),
        acrossChannels: this.#topLevel.violation,
      },
      findings: this.#log.findings,
      findingCounts: this.#log.counts,
      errorCount: this.#log.errors,
      warningCount: this.#log.warnings,
    };
  }
}
