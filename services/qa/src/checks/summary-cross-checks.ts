import { opName } from './mcap-records.js';
import type { FindingLog } from './scan-findings.js';
import type { PassSnapshot } from './scan-state.js';

/**
 * After the pass: what the summary section and the Footer claim, against what the pass actually saw. Chunk
 * indexes ↔ chunks (and their message indexes), statistics ↔ counts and times, attachment / metadata indexes ↔
 * records, summary offsets ↔ summary groups, Footer offsets ↔ section starts (`mcap doctor` checks a subset).
 */

const topicOf = (s: PassSnapshot, id: number) => {
  const c = s.channelById(id);
  return c ? `channel ${id} (${c.topic})` : `channel ${id}`;
};

export function crossCheckSummary(s: PassSnapshot, log: FindingLog): void {
  const footer = s.footer;
  const dataEnd = s.dataEnd;
  if (footer && dataEnd) {
    const hasSummary = s.summaryStart >= 0 && s.summaryStart !== s.summaryOffsetStart;
    if (footer.summaryStart !== 0 && footer.summaryStart !== dataEnd.end) {
      log.error(
        'footer_summary_start',
        `Footer.summary_start is ${footer.summaryStart}, the summary section starts at offset ${dataEnd.end}`,
        footer.offset,
      );
    } else if (footer.summaryStart === 0 && hasSummary) {
      log.warn(
        'footer_summary_start',
        `Footer.summary_start is 0 but a summary section starts at offset ${dataEnd.end}: indexed readers will not see it`,
        footer.offset,
      );
    }
    if (s.summaryOffsets.length > 0 && footer.summaryOffsetStart !== s.summaryOffsetStart) {
      log.error(
        'footer_summary_offset_start',
        `Footer.summary_offset_start is ${footer.summaryOffsetStart}, the summary offset section starts at offset ${s.summaryOffsetStart}`,
        footer.offset,
      );
    } else if (
      s.summaryOffsets.length === 0 &&
      footer.summaryOffsetStart !== 0 &&
      footer.summaryOffsetStart !== footer.offset
    ) {
      log.error(
        'footer_summary_offset_start',
        `Footer.summary_offset_start is ${footer.summaryOffsetStart} but the file has no summary offset records`,
        footer.offset,
      );
    }
  }
  checkChunkIndexes(s, log);
  checkStatistics(s, log);
  checkOtherIndexes(s, log);
}

function checkChunkIndexes(s: PassSnapshot, log: FindingLog): void {
  const indexed = new Set<number>();
  for (const { record: ci, offset } of s.chunkIndexes) {
    const chunk = s.chunksByOffset.get(ci.chunkStartOffset);
    if (!chunk) {
      log.error(
        'chunk_index',
        `ChunkIndex at offset ${offset} points at offset ${ci.chunkStartOffset}, where no Chunk record starts`,
        offset,
      );
      continue;
    }
    if (indexed.has(chunk.offset)) {
      log.error(
        'chunk_index',
        `ChunkIndex at offset ${offset} indexes chunk ${chunk.index} (offset ${chunk.offset}) a second time`,
        offset,
      );
      continue;
    }
    indexed.add(chunk.offset);
    const diffs: string[] = [];
    const cmp = (field: string, index: unknown, actual: unknown) => {
      if (index !== actual) diffs.push(`${field} ${String(index)} vs ${String(actual)}`);
    };
    cmp('chunk_length', ci.chunkLength, chunk.length);
    cmp('message_start_time', ci.startTime, chunk.startTime);
    cmp('message_end_time', ci.endTime, chunk.endTime);
    cmp('compression', JSON.stringify(ci.compression), JSON.stringify(chunk.compression));
    cmp('compressed_size', ci.compressedSize, chunk.compressedSize);
    cmp('uncompressed_size', ci.uncompressedSize, chunk.uncompressedSize);
    if (ci.messageIndexOffsets.size > 0) {
      cmp('message_index_length', ci.messageIndexLength, chunk.messageIndexLength);
      const channels = new Set([...ci.messageIndexOffsets.keys(), ...chunk.messageIndexOffsets.keys()]);
      for (const ch of [...channels].sort((a, b) => a - b)) {
        const said = ci.messageIndexOffsets.get(ch);
        const found = chunk.messageIndexOffsets.get(ch);
        if (said === undefined || found === undefined || Number(said) !== found) {
          diffs.push(`message_index_offsets[${ch}] ${said ?? 'missing'} vs ${found ?? 'missing'}`);
        }
      }
    }
    if (diffs.length > 0) {
      log.error(
        'chunk_index',
        `ChunkIndex at offset ${offset} disagrees with chunk ${chunk.index} (offset ${chunk.offset}), index vs chunk: ${diffs.join('; ')}`,
        offset,
      );
    }
  }
  if (s.chunks.length === 0 || !s.footer) return;
  if (s.chunkIndexes.length === 0) {
    log.warn(
      'chunk_index_missing',
      `none of the ${s.chunks.length} chunks has a ChunkIndex: indexed readers will find no messages`,
    );
    return;
  }
  for (const chunk of s.chunks) {
    if (!indexed.has(chunk.offset)) {
      log.error(
        'chunk_index_missing',
        `chunk ${chunk.index} (offset ${chunk.offset}) has no ChunkIndex in the summary`,
        chunk.offset,
      );
    }
  }
  // Indexed readers decode messages with the summary's copies of channels and schemas (spec, Chunk Index).
  const reported = new Set<number>();
  for (const c of s.channels) {
    if (!c.usedInChunk) continue;
    if (!c.inSummary) {
      log.error(
        'summary_channel',
        `Channel ${c.id} (${c.topic}) has messages in indexed chunks but no copy in the summary section`,
        c.definedAt,
      );
    }
    const schema = s.schemas.get(c.schemaId);
    if (c.schemaId !== 0 && schema && !schema.inSummary && !reported.has(c.schemaId)) {
      reported.add(c.schemaId);
      log.error(
        'summary_schema',
        `Schema ${c.schemaId} (${schema.record.name}) of channel ${c.id} (${c.topic}) has no copy in the summary section`,
        c.definedAt,
      );
    }
  }
  if (s.chunksWithoutMessageIndex > 0 && s.chunksWithoutMessageIndex < s.chunks.length) {
    log.warn(
      'message_index_missing',
      `${s.chunksWithoutMessageIndex} of ${s.chunks.length} chunks have no MessageIndex records`,
    );
  }
}

function checkStatistics(s: PassSnapshot, log: FindingLog): void {
  const stats = s.statistics;
  if (!stats) return;
  const wrong = (field: string, said: unknown, actual: unknown) => {
    if (said !== actual) {
      log.error('statistics', `Statistics.${field} is ${String(said)}, the file holds ${String(actual)}`);
    }
  };
  wrong('message_count', stats.messageCount, BigInt(s.messageCount));
  wrong('schema_count', stats.schemaCount, s.schemas.size);
  wrong('channel_count', stats.channelCount, s.channels.length);
  wrong('attachment_count', stats.attachmentCount, s.attachments.size);
  wrong('metadata_count', stats.metadataCount, s.metadata.size);
  wrong('chunk_count', stats.chunkCount, s.chunks.length);
  wrong('message_start_time', stats.startTime, s.startTime);
  wrong('message_end_time', stats.endTime, s.endTime);
  if (stats.channelMessageCounts.size === 0) return;
  const ids = new Set([
    ...stats.channelMessageCounts.keys(),
    ...s.channels.filter((c) => c.count > 0).map((c) => c.id),
  ]);
  for (const id of [...ids].sort((a, b) => a - b)) {
    const said = stats.channelMessageCounts.get(id) ?? 0n;
    const actual = BigInt(s.channelById(id)?.count ?? 0);
    if (said !== actual) {
      log.error(
        'statistics',
        `Statistics.channel_message_counts for ${topicOf(s, id)} is ${said}, the file holds ${actual}`,
      );
    }
  }
}

function checkOtherIndexes(s: PassSnapshot, log: FindingLog): void {
  const seen = new Set<number>();
  for (const { record: ai, offset } of s.attachmentIndexes) {
    const a = s.attachments.get(ai.offset);
    seen.add(ai.offset);
    const same =
      a &&
      a.length === ai.length &&
      a.name === ai.name &&
      a.mediaType === ai.mediaType &&
      a.logTime === ai.logTime &&
      a.createTime === ai.createTime &&
      a.dataSize === ai.dataSize;
    if (!same) {
      log.error(
        'attachment_index',
        a
          ? `AttachmentIndex at offset ${offset} disagrees with the attachment ${JSON.stringify(a.name)} at offset ${ai.offset}`
          : `AttachmentIndex at offset ${offset} points at offset ${ai.offset}, where no Attachment record starts`,
        offset,
      );
    }
  }
  if (s.attachmentIndexes.length > 0) {
    for (const [at, a] of s.attachments) {
      if (!seen.has(at))
        log.error(
          'attachment_index',
          `Attachment ${JSON.stringify(a.name)} at offset ${at} has no AttachmentIndex`,
          at,
        );
    }
  }
  for (const { record: mi, offset } of s.metadataIndexes) {
    const m = s.metadata.get(mi.offset);
    if (!m || m.length !== mi.length || m.name !== mi.name) {
      log.error(
        'metadata_index',
        m
          ? `MetadataIndex at offset ${offset} disagrees with the metadata ${JSON.stringify(m.name)} at offset ${mi.offset}`
          : `MetadataIndex at offset ${offset} points at offset ${mi.offset}, where no Metadata record starts`,
        offset,
      );
    }
  }
  for (const { record: so, offset } of s.summaryOffsets) {
    const g = s.summaryGroups.get(so.groupOpcode);
    if (!g || g.start !== so.groupStart || g.end - g.start !== so.groupLength) {
      log.error(
        'summary_offset',
        `SummaryOffset at offset ${offset} gives the ${opName(so.groupOpcode)} group as ${so.groupStart}+${so.groupLength}, the summary has it at ${g ? `${g.start}+${g.end - g.start}` : 'no offset (absent)'}`,
        offset,
      );
    }
  }
}
