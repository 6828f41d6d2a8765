import type { HeaderRecord, StatisticsRecord } from './mcap-records.js';

export type FindingSeverity = 'error' | 'warning';

/** Stable codes; the message says the rest. docs/qa.md lists what each one means. */
export type FindingCode =
  | 'leading_magic'
  | 'trailing_magic'
  | 'trailing_bytes'
  | 'truncated'
  | 'header_missing'
  | 'header_duplicate'
  | 'header_library'
  | 'header_profile'
  | 'footer_missing'
  | 'footer_malformed'
  | 'footer_summary_start'
  | 'footer_summary_offset_start'
  | 'data_end_missing'
  | 'data_section_crc'
  | 'summary_crc'
  | 'record_malformed'
  | 'record_too_large'
  | 'record_unknown'
  | 'record_misplaced'
  | 'chunk_compression'
  | 'chunk_decompress'
  | 'chunk_size'
  | 'chunk_crc'
  | 'chunk_record'
  | 'chunk_time_range'
  | 'schema_invalid'
  | 'schema_conflict'
  | 'channel_conflict'
  | 'channel_unknown_schema'
  | 'message_unknown_channel'
  | 'message_index'
  | 'message_index_orphan'
  | 'message_index_missing'
  | 'chunk_index'
  | 'chunk_index_missing'
  | 'statistics'
  | 'statistics_duplicate'
  | 'summary_schema'
  | 'summary_channel'
  | 'summary_not_grouped'
  | 'summary_offset'
  | 'attachment_crc'
  | 'attachment_index'
  | 'metadata_index';

export interface Finding {
  severity: FindingSeverity;
  code: FindingCode;
  /** Human text naming the place: record offset, chunk number and offset, channel and topic, sequence, log time. */
  message: string;
  /** File offset of the record concerned, when there is one. */
  offset?: number;
}

export interface ChannelFacts {
  id: number;
  topic: string;
  schemaId: number;
  /** null for schema id 0 (no schema) or a schema never defined. */
  schemaName: string | null;
  messageEncoding: string;
  count: number;
  /** Earliest and latest log time seen on the channel; null without messages. */
  firstLogTime: bigint | null;
  lastLogTime: bigint | null;
  /** Longest log-time step between consecutive messages (in file order, against the latest time so far). */
  maxGapNs: number;
}

export interface TopicFacts {
  topic: string;
  channelIds: number[];
  count: number;
  firstLogTime: bigint | null;
  lastLogTime: bigint | null;
  /** As ChannelFacts.maxGapNs, over all channels of the topic together. */
  maxGapNs: number;
  /** Log time of the message that ended that gap; null when there was none. */
  maxGapEndsAt: bigint | null;
}

export interface SchemaFacts {
  id: number;
  name: string;
  encoding: string;
}

/** The first message whose log time is below an earlier one. */
export interface OrderViolation {
  channelId: number;
  topic: string;
  sequence: number;
  logTime: bigint;
  /** The latest log time before it (on the same channel, or across channels for `acrossChannels`). */
  previousLogTime: bigint;
  /** Where it is, e.g. "chunk 3 (offset 4096), byte 120 of the chunk" or "offset 812". */
  place: string;
}

export interface CompressionStats {
  chunks: number;
  compressedBytes: number;
  uncompressedBytes: number;
}

export type CrcStatus = 'ok' | 'mismatch' | 'not_recorded' | 'not_checked';

/** Everything one pass over the file established. */
export interface McapScan {
  bytesRead: number;
  sha256: string;
  /** The file ends before its Footer and trailing magic. */
  truncated: boolean;
  /** End offset of the last complete record (how far the file was readable). */
  readableBytes: number;
  header: HeaderRecord | null;
  schemas: SchemaFacts[];
  channels: ChannelFacts[];
  topics: TopicFacts[];
  messageCount: number;
  /** Messages on channels that were never defined (not in `channels`). */
  orphanMessages: number;
  startTime: bigint | null;
  endTime: bigint | null;
  /** endTime − startTime in nanoseconds (0 without messages). */
  durationNs: number;
  chunks: CompressionStats & { byCompression: Record<string, CompressionStats> };
  attachmentCount: number;
  metadataCount: number;
  statistics: StatisticsRecord | null;
  crc: { dataSection: CrcStatus; summary: CrcStatus; chunksChecked: number; chunksWithoutCrc: number };
  order: {
    /** Messages whose log time is below the latest earlier one on their channel. */
    outOfOrder: number;
    /** First violation per channel, in file order. */
    firstByChannel: OrderViolation[];
    /** Top-level (unchunked) messages only: the first that goes back in time across channels. */
    acrossChannels: OrderViolation | null;
  };
  findings: Finding[];
  /** All findings per code, including those beyond the per-code cap kept in `findings`. */
  findingCounts: Partial<Record<FindingCode, number>>;
  errorCount: number;
  warningCount: number;
}
