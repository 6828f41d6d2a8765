import type {
  AttachmentIndexRecord,
  ChunkIndexRecord,
  FooterRecord,
  MetadataIndexRecord,
  SchemaRecord,
  StatisticsRecord,
  SummaryOffsetRecord,
} from './mcap-records.js';
import type { OrderViolation } from './mcap-scan.types.js';

// What McapScanner keeps while it reads, shared with the end-of-pass cross-checks (summary-cross-checks.ts).

export interface ChannelState {
  id: number;
  topic: string;
  schemaId: number;
  messageEncoding: string;
  metadata: Map<string, string>;
  definedAt: number;
  inData: boolean;
  inSummary: boolean;
  topicState: TopicState;
  count: number;
  // Log times as two uint32 halves: exact without allocating a bigint per message.
  minHi: number;
  minLo: number;
  maxHi: number;
  maxLo: number;
  maxGap: number;
  outOfOrder: number;
  violation: OrderViolation | null;
  usedInChunk: boolean;
}

export interface TopicState {
  topic: string;
  channelIds: number[];
  count: number;
  maxHi: number;
  maxLo: number;
  maxGap: number;
  gapEndHi: number;
  gapEndLo: number;
}

export interface SchemaState {
  record: SchemaRecord;
  inData: boolean;
  inSummary: boolean;
}

export interface ChunkState {
  index: number;
  offset: number;
  length: number;
  startTime: bigint;
  endTime: bigint;
  compression: string;
  compressedSize: number;
  uncompressedSize: number;
  messages: number;
  messageIndexOffsets: Map<number, number>;
  messageIndexEntries: Map<number, number>;
  messageIndexLength: number;
  /** Inner records were read (decompressed, parsed): its messages can be compared with its indexes. */
  readable: boolean;
}

/** The summary's claims and what the pass saw, handed to the end-of-pass cross-checks. */
export interface PassSnapshot {
  footer: (FooterRecord & { offset: number }) | null;
  dataEnd: { offset: number; end: number } | null;
  /** Offset of the first summary-section record (-1: none), and of the first SummaryOffset record (-1: none). */
  summaryStart: number;
  summaryOffsetStart: number;
  summaryOffsets: readonly { record: SummaryOffsetRecord; offset: number }[];
  summaryGroups: ReadonlyMap<number, { start: number; end: number; count: number }>;
  chunks: readonly ChunkState[];
  chunksByOffset: ReadonlyMap<number, ChunkState>;
  chunkIndexes: readonly { record: ChunkIndexRecord; offset: number }[];
  chunksWithoutMessageIndex: number;
  channels: readonly ChannelState[];
  channelById: (id: number) => ChannelState | undefined;
  schemas: ReadonlyMap<number, SchemaState>;
  statistics: StatisticsRecord | null;
  messageCount: number;
  /** Earliest and latest message log time; 0 without messages (as Statistics records them). */
  startTime: bigint;
  endTime: bigint;
  attachments: ReadonlyMap<number, AttachmentIndexRecord>;
  attachmentIndexes: readonly { record: AttachmentIndexRecord; offset: number }[];
  metadata: ReadonlyMap<number, { length: number; name: string }>;
  metadataIndexes: readonly { record: MetadataIndexRecord; offset: number }[];
}
