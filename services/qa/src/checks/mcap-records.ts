/**
 * MCAP record layouts (spec: mcap.dev/spec, "Records"), read straight from bytes. The scanner's hot path
 * (Message records inside chunks) reads its few fields inline; everything else goes through the bounds-checked
 * FieldReader below, so a malformed record becomes a MalformedRecordError (a finding), never a RangeError.
 */

export const MCAP_MAGIC = Uint8Array.of(0x89, 0x4d, 0x43, 0x41, 0x50, 0x30, 0x0d, 0x0a);
/** Opcode (1) + content length (8). */
export const RECORD_PREFIX = 9;
/** Footer content: summary_start (8) + summary_offset_start (8) + summary_crc (4). */
export const FOOTER_CONTENT_LENGTH = 20;
/** The footer bytes the summary CRC covers: prefix + summary_start + summary_offset_start. */
export const FOOTER_CRC_COVERED = RECORD_PREFIX + 16;
/** channel_id (2) + sequence (4) + log_time (8) + publish_time (8). */
export const MESSAGE_FIXED = 22;

export const Op = {
  HEADER: 0x01,
  FOOTER: 0x02,
  SCHEMA: 0x03,
  CHANNEL: 0x04,
  MESSAGE: 0x05,
  CHUNK: 0x06,
  MESSAGE_INDEX: 0x07,
  CHUNK_INDEX: 0x08,
  ATTACHMENT: 0x09,
  ATTACHMENT_INDEX: 0x0a,
  STATISTICS: 0x0b,
  METADATA: 0x0c,
  METADATA_INDEX: 0x0d,
  SUMMARY_OFFSET: 0x0e,
  DATA_END: 0x0f,
} as const;

const OP_NAMES: Record<number, string> = {
  [Op.HEADER]: 'Header',
  [Op.FOOTER]: 'Footer',
  [Op.SCHEMA]: 'Schema',
  [Op.CHANNEL]: 'Channel',
  [Op.MESSAGE]: 'Message',
  [Op.CHUNK]: 'Chunk',
  [Op.MESSAGE_INDEX]: 'MessageIndex',
  [Op.CHUNK_INDEX]: 'ChunkIndex',
  [Op.ATTACHMENT]: 'Attachment',
  [Op.ATTACHMENT_INDEX]: 'AttachmentIndex',
  [Op.STATISTICS]: 'Statistics',
  [Op.METADATA]: 'Metadata',
  [Op.METADATA_INDEX]: 'MetadataIndex',
  [Op.SUMMARY_OFFSET]: 'SummaryOffset',
  [Op.DATA_END]: 'DataEnd',
};

export function opName(opcode: number): string {
  return OP_NAMES[opcode] ?? `opcode 0x${opcode.toString(16).padStart(2, '0')}`;
}

/** 0x01–0x7F are reserved for the spec (unknown ones are future records), 0x80–0xFF for private records. */
export const isPrivateOpcode = (opcode: number) => opcode >= 0x80;

export const hex = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(' ');

export class MalformedRecordError extends Error {
  override readonly name = 'MalformedRecordError';
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Sequential little-endian reads over one record's content, refusing to read past its end. */
export class FieldReader {
  readonly view: DataView;
  pos: number;

  constructor(
    readonly bytes: Uint8Array,
    start: number,
    readonly end: number,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = start;
  }

  #need(n: number, what: string): void {
    if (this.pos + n > this.end) {
      throw new MalformedRecordError(`${what} needs ${n} bytes, only ${this.end - this.pos} left in the record`);
    }
  }

  u8(what: string): number {
    this.#need(1, what);
    return this.bytes[this.pos++]!;
  }

  u16(what: string): number {
    this.#need(2, what);
    const v = this.view.getUint16(this.pos, true);
    this.pos += 2;
    return v;
  }

  u32(what: string): number {
    this.#need(4, what);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }

  u64(what: string): bigint {
    this.#need(8, what);
    const v = this.view.getBigUint64(this.pos, true);
    this.pos += 8;
    return v;
  }

  /** A u64 that must fit a JS number (lengths and offsets). */
  size(what: string): number {
    const v = this.u64(what);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new MalformedRecordError(`${what} ${v} is out of range`);
    return Number(v);
  }

  bytesOf(n: number, what: string): Uint8Array {
    this.#need(n, what);
    const out = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  string(what: string): string {
    const n = this.u32(`${what} length`);
    const raw = this.bytesOf(n, what);
    try {
      return utf8.decode(raw);
    } catch {
      throw new MalformedRecordError(`${what} is not valid UTF-8`);
    }
  }

  stringMap(what: string): Map<string, string> {
    const n = this.u32(`${what} length`);
    this.#need(n, what);
    const end = this.pos + n;
    const out = new Map<string, string>();
    while (this.pos < end) {
      const k = this.string(`${what} key`);
      out.set(k, this.string(`${what} value`));
    }
    if (this.pos !== end) throw new MalformedRecordError(`${what} entries overrun its length`);
    return out;
  }

  /** Map<uint16, uint64> as used by chunk indexes and statistics. */
  idMap(what: string): Map<number, bigint> {
    const n = this.u32(`${what} length`);
    if (n % 10 !== 0) throw new MalformedRecordError(`${what} length ${n} is not a multiple of 10`);
    this.#need(n, what);
    const out = new Map<number, bigint>();
    for (const end = this.pos + n; this.pos < end; ) out.set(this.u16(`${what} key`), this.u64(`${what} value`));
    return out;
  }
}

export interface HeaderRecord {
  profile: string;
  library: string;
}
export interface FooterRecord {
  summaryStart: number;
  summaryOffsetStart: number;
  summaryCrc: number;
}
export interface SchemaRecord {
  id: number;
  name: string;
  encoding: string;
  data: Uint8Array;
}
export interface ChannelRecord {
  id: number;
  schemaId: number;
  topic: string;
  messageEncoding: string;
  metadata: Map<string, string>;
}
export interface ChunkHeader {
  startTime: bigint;
  endTime: bigint;
  uncompressedSize: number;
  uncompressedCrc: number;
  compression: string;
  /** Index of the first compressed byte within the buffer the record was read from. */
  recordsStart: number;
  compressedSize: number;
}
export interface ChunkIndexRecord {
  startTime: bigint;
  endTime: bigint;
  chunkStartOffset: number;
  chunkLength: number;
  messageIndexOffsets: Map<number, bigint>;
  messageIndexLength: number;
  compression: string;
  compressedSize: number;
  uncompressedSize: number;
}
export interface AttachmentRecord {
  logTime: bigint;
  createTime: bigint;
  name: string;
  mediaType: string;
  dataSize: number;
  /** Bytes covered by the CRC (content start up to the crc field). */
  crcCoveredEnd: number;
  crc: number;
}
export interface AttachmentIndexRecord {
  offset: number;
  length: number;
  logTime: bigint;
  createTime: bigint;
  dataSize: number;
  name: string;
  mediaType: string;
}
export interface StatisticsRecord {
  messageCount: bigint;
  schemaCount: number;
  channelCount: number;
  attachmentCount: number;
  metadataCount: number;
  chunkCount: number;
  startTime: bigint;
  endTime: bigint;
  channelMessageCounts: Map<number, bigint>;
}
export interface MetadataIndexRecord {
  offset: number;
  length: number;
  name: string;
}
export interface SummaryOffsetRecord {
  groupOpcode: number;
  groupStart: number;
  groupLength: number;
}

// Each reader takes the record content as [start, end) of `bytes`. Fields past the known ones are allowed
// (records may be extended, spec "Records"), so none of them insists on consuming the whole content.

export function readHeader(bytes: Uint8Array, start: number, end: number): HeaderRecord {
  const r = new FieldReader(bytes, start, end);
  return { profile: r.string('Header.profile'), library: r.string('Header.library') };
}

export function readFooter(bytes: Uint8Array, start: number, end: number): FooterRecord {
  const r = new FieldReader(bytes, start, end);
  return {
    summaryStart: r.size('Footer.summary_start'),
    summaryOffsetStart: r.size('Footer.summary_offset_start'),
    summaryCrc: r.u32('Footer.summary_crc'),
  };
}

export function readSchema(bytes: Uint8Array, start: number, end: number): SchemaRecord {
  const r = new FieldReader(bytes, start, end);
  const id = r.u16('Schema.id');
  const name = r.string('Schema.name');
  const encoding = r.string('Schema.encoding');
  const data = r.bytesOf(r.u32('Schema.data length'), 'Schema.data');
  return { id, name, encoding, data };
}

export function readChannel(bytes: Uint8Array, start: number, end: number): ChannelRecord {
  const r = new FieldReader(bytes, start, end);
  return {
    id: r.u16('Channel.id'),
    schemaId: r.u16('Channel.schema_id'),
    topic: r.string('Channel.topic'),
    messageEncoding: r.string('Channel.message_encoding'),
    metadata: r.stringMap('Channel.metadata'),
  };
}

export function readChunkHeader(bytes: Uint8Array, start: number, end: number): ChunkHeader {
  const r = new FieldReader(bytes, start, end);
  const startTime = r.u64('Chunk.message_start_time');
  const endTime = r.u64('Chunk.message_end_time');
  const uncompressedSize = r.size('Chunk.uncompressed_size');
  const uncompressedCrc = r.u32('Chunk.uncompressed_crc');
  const compression = r.string('Chunk.compression');
  const compressedSize = r.size('Chunk.records length');
  const recordsStart = r.pos;
  r.bytesOf(compressedSize, 'Chunk.records');
  return { startTime, endTime, uncompressedSize, uncompressedCrc, compression, recordsStart, compressedSize };
}

export function readChunkIndex(bytes: Uint8Array, start: number, end: number): ChunkIndexRecord {
  const r = new FieldReader(bytes, start, end);
  return {
    startTime: r.u64('ChunkIndex.message_start_time'),
    endTime: r.u64('ChunkIndex.message_end_time'),
    chunkStartOffset: r.size('ChunkIndex.chunk_start_offset'),
    chunkLength: r.size('ChunkIndex.chunk_length'),
    messageIndexOffsets: r.idMap('ChunkIndex.message_index_offsets'),
    messageIndexLength: r.size('ChunkIndex.message_index_length'),
    compression: r.string('ChunkIndex.compression'),
    compressedSize: r.size('ChunkIndex.compressed_size'),
    uncompressedSize: r.size('ChunkIndex.uncompressed_size'),
  };
}

export function readAttachment(bytes: Uint8Array, start: number, end: number): AttachmentRecord {
  const r = new FieldReader(bytes, start, end);
  const logTime = r.u64('Attachment.log_time');
  const createTime = r.u64('Attachment.create_time');
  const name = r.string('Attachment.name');
  const mediaType = r.string('Attachment.media_type');
  const dataSize = r.size('Attachment.data length');
  r.bytesOf(dataSize, 'Attachment.data');
  const crcCoveredEnd = r.pos;
  return { logTime, createTime, name, mediaType, dataSize, crcCoveredEnd, crc: r.u32('Attachment.crc') };
}

export function readAttachmentIndex(bytes: Uint8Array, start: number, end: number): AttachmentIndexRecord {
  const r = new FieldReader(bytes, start, end);
  return {
    offset: r.size('AttachmentIndex.offset'),
    length: r.size('AttachmentIndex.length'),
    logTime: r.u64('AttachmentIndex.log_time'),
    createTime: r.u64('AttachmentIndex.create_time'),
    dataSize: r.size('AttachmentIndex.data_size'),
    name: r.string('AttachmentIndex.name'),
    mediaType: r.string('AttachmentIndex.media_type'),
  };
}

export function readStatistics(bytes: Uint8Array, start: number, end: number): StatisticsRecord {
  const r = new FieldReader(bytes, start, end);
  return {
    messageCount: r.u64('Statistics.message_count'),
    schemaCount: r.u16('Statistics.schema_count'),
    channelCount: r.u32('Statistics.channel_count'),
    attachmentCount: r.u32('Statistics.attachment_count'),
    metadataCount: r.u32('Statistics.metadata_count'),
    chunkCount: r.u32('Statistics.chunk_count'),
    startTime: r.u64('Statistics.message_start_time'),
    endTime: r.u64('Statistics.message_end_time'),
    channelMessageCounts: r.idMap('Statistics.channel_message_counts'),
  };
}

export function readMetadataName(bytes: Uint8Array, start: number, end: number): string {
  const r = new FieldReader(bytes, start, end);
  const name = r.string('Metadata.name');
  r.stringMap('Metadata.metadata');
  return name;
}

export function readMetadataIndex(bytes: Uint8Array, start: number, end: number): MetadataIndexRecord {
  const r = new FieldReader(bytes, start, end);
  return {
    offset: r.size('MetadataIndex.offset'),
    length: r.size('MetadataIndex.length'),
    name: r.string('MetadataIndex.name'),
  };
}

export function readSummaryOffset(bytes: Uint8Array, start: number, end: number): SummaryOffsetRecord {
  const r = new FieldReader(bytes, start, end);
  return {
    groupOpcode: r.u8('SummaryOffset.group_opcode'),
    groupStart: r.size('SummaryOffset.group_start'),
    groupLength: r.size('SummaryOffset.group_length'),
  };
}

export function readDataEnd(bytes: Uint8Array, start: number, end: number): number {
  return new FieldReader(bytes, start, end).u32('DataEnd.data_section_crc');
}

export const sameBytes = (a: Uint8Array, b: Uint8Array) => a.byteLength === b.byteLength && Buffer.compare(a, b) === 0;

export const sameStringMap = (a: ReadonlyMap<string, string>, b: ReadonlyMap<string, string>) =>
  a.size === b.size && [...a].every(([k, v]) => b.get(k) === v);
