import { failed, firstFew, passed, type QaCheck, skipped } from './qa-check.js';

/** Findings quoted in the details of a failure; the rest are counted. */
export const INTEGRITY_DETAIL_FINDINGS = 3;

/**
 * The container: magic, header, footer, CRCs (data section, summary, every chunk), decompression, every record,
 * index ↔ chunk agreement, statistics ↔ content agreement. Any error finding fails it; warnings never do.
 */
export const mcapIntegrityCheck: QaCheck = {
  name: 'mcap_integrity',
  version: 1,
  run({ scan }) {
    if (!scan) return skipped(this, 'no object to read');
    const errors = scan.findings.filter((f) => f.severity === 'error');
    const warnings = scan.findings.filter((f) => f.severity === 'warning');
    const metrics = {
      errors: scan.errorCount,
      warnings: scan.warningCount,
      finding_counts: scan.findingCounts,
      findings: scan.findings.slice(0, 50),
      truncated: scan.truncated,
      readable_bytes: scan.readableBytes,
      chunks: scan.chunks.chunks,
      compression: Object.fromEntries(Object.entries(scan.chunks.byCompression).map(([k, v]) => [k, v.chunks])),
      compressed_bytes: scan.chunks.compressedBytes,
      uncompressed_bytes: scan.chunks.uncompressedBytes,
      crc: scan.crc,
      library: scan.header?.library ?? null,
      profile: scan.header?.profile ?? null,
    };
    if (scan.errorCount > 0) {
      const noun = scan.errorCount === 1 ? 'error' : 'errors';
      const shown = errors.map((f) => f.message);
      return failed(
        this,
        `MCAP integrity: ${scan.errorCount} ${noun}: ${firstFew(shown, INTEGRITY_DETAIL_FINDINGS, scan.errorCount)}`,
        metrics,
      );
    }
    const warned =
      scan.warningCount > 0
        ? ` (${scan.warningCount} ${scan.warningCount === 1 ? 'warning' : 'warnings'}: ${firstFew(
            warnings.map((f) => f.message),
            1,
            scan.warningCount,
          )})`
        : '';
    return passed(
      this,
      `MCAP valid: ${scan.chunks.chunks} chunks, ${scan.channels.length} channels, ${scan.messageCount} messages${warned}`,
      metrics,
    );
  },
};
