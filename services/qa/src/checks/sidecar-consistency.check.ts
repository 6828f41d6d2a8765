import { failed, passed, type QaCheck, seconds, skipped } from './qa-check.js';

/**
 * How closely the sidecar must agree with the MCAP. Counts and topic sets are exact; the duration allows for a
 * recorder that times the session rather than first-to-last message: ±max(0.5 s, 2 % of the MCAP's span).
 */
export const SIDECAR_TOLERANCES = {
  durationAbsoluteSec: 0.5,
  durationRelative: 0.02,
  messageCount: 0,
} as const;

export const sidecarDurationToleranceSec = (mcapDurationSec: number) =>
  Math.max(SIDECAR_TOLERANCES.durationAbsoluteSec, SIDECAR_TOLERANCES.durationRelative * mcapDurationSec);

/** The sidecar (RecordingMetadata, as transfer parsed it) against the MCAP: message count, topic set, duration. */
export const sidecarConsistencyCheck: QaCheck = {
  name: 'sidecar_consistency',
  version: 1,
  run({ scan, recording }) {
    if (!recording) return skipped(this, 'no sidecar metadata');
    if (!scan) return skipped(this, 'no object to read');
    const { message_count, topics, duration_sec } = recording;
    if (message_count === undefined && topics === undefined && duration_sec === undefined) {
      return skipped(this, 'sidecar gives no message_count, topics or duration_sec');
    }
    const mcapTopics = [...new Set(scan.channels.map((c) => c.topic))].sort();
    const mcapDurationSec = scan.durationNs / 1e9;
    const metrics: Record<string, unknown> = {
      mcap_message_count: scan.messageCount,
      mcap_topics: mcapTopics,
      mcap_duration_sec: mcapDurationSec,
    };
    const problems: string[] = [];
    const agreed: string[] = [];
    if (message_count !== undefined) {
      metrics.sidecar_message_count = message_count;
      if (message_count !== scan.messageCount) {
        problems.push(`message_count: sidecar says ${message_count}, MCAP has ${scan.messageCount}`);
      } else agreed.push(`message_count ${message_count}`);
    }
    if (topics !== undefined) {
      const listed = [...new Set(topics.map((t) => t.trim()).filter((t) => t !== ''))].sort();
      metrics.sidecar_topics = listed;
      const missing = listed.filter((t) => !mcapTopics.includes(t));
      const extra = mcapTopics.filter((t) => !listed.includes(t));
      const parts: string[] = [];
      if (missing.length > 0) parts.push(`sidecar lists ${missing.join(', ')} missing from the MCAP`);
      if (extra.length > 0) parts.push(`MCAP has ${extra.join(', ')} not in the sidecar`);
      if (parts.length > 0) problems.push(`topics: ${parts.join('; ')}`);
      else agreed.push(`${listed.length} topics`);
    }
    if (duration_sec !== undefined) {
      const tolerance = sidecarDurationToleranceSec(mcapDurationSec);
      metrics.sidecar_duration_sec = duration_sec;
      metrics.duration_tolerance_sec = tolerance;
      if (Math.abs(duration_sec - mcapDurationSec) > tolerance) {
        problems.push(
          `duration: sidecar says ${seconds(duration_sec * 1e9)}, MCAP spans ${seconds(scan.durationNs)} (tolerance ±${tolerance.toFixed(3)} s)`,
        );
      } else agreed.push(`duration ${seconds(scan.durationNs)}`);
    }
    if (problems.length > 0) {
      return failed(
        this,
        `sidecar disagrees with the MCAP: ${problems.join('; ')}`,
        metrics,
        agreed.length / (agreed.length + problems.length),
      );
    }
    return passed(this, `sidecar agrees with the MCAP: ${agreed.join(', ')}`, metrics);
  },
};
