import type { TopicFacts } from './mcap-scan.types.js';
import { failed, passed, type QaCheck, seconds, skipped } from './qa-check.js';

const hz = (v: number) => `${v.toFixed(1)} Hz`;
const ms = (ns: number) => `${(ns / 1e6).toFixed(1)} ms`;

/**
 * The longest stretch of the recording without a message on the topic: between consecutive messages, and also
 * from the recording's first message to the topic's first, and from the topic's last to the recording's end (a
 * camera that died early is a gap too).
 */
export function longestGap(topic: TopicFacts, start: bigint, end: bigint): { ns: number; where: string } {
  let best = {
    ns: topic.maxGapNs,
    where: topic.maxGapEndsAt === null ? '' : `ending at log time ${topic.maxGapEndsAt}`,
  };
  if (topic.firstLogTime !== null && Number(topic.firstLogTime - start) > best.ns) {
    best = { ns: Number(topic.firstLogTime - start), where: 'before its first message' };
  }
  if (topic.lastLogTime !== null && Number(end - topic.lastLogTime) > best.ns) {
    best = { ns: Number(end - topic.lastLogTime), where: 'after its last message' };
  }
  return best;
}

/**
 * A robot type's or scene's content profile (QaProfile): required topics, duration range, per-topic minimum rate
 * (messages / recording duration) and maximum gap. Skipped (not passed) when no profile is configured.
 */
export const profileCheck: QaCheck = {
  name: 'profile',
  version: 1,
  run({ scan, profile }) {
    if (!profile) return skipped(this, 'no profile configured');
    if (!scan) return skipped(this, 'no object to read');
    const problems: string[] = [];
    let rules = 0;
    const byTopic = new Map(scan.topics.map((t) => [t.topic, t]));
    const durationSec = scan.durationNs / 1e9;
    const measured: Record<string, unknown> = {};

    for (const topic of profile.required_topics) {
      rules++;
      const t = byTopic.get(topic);
      if (!t) problems.push(`required topic ${topic} is missing`);
      else if (t.count === 0) problems.push(`required topic ${topic} has no messages`);
    }
    const range = profile.duration_sec;
    if (range?.min !== undefined) {
      rules++;
      if (durationSec < range.min)
        problems.push(`duration ${seconds(scan.durationNs)} is below the minimum ${range.min} s`);
    }
    if (range?.max !== undefined) {
      rules++;
      if (durationSec > range.max)
        problems.push(`duration ${seconds(scan.durationNs)} is above the maximum ${range.max} s`);
    }
    for (const [topic, rule] of Object.entries(profile.topics ?? {})) {
      const t = byTopic.get(topic);
      const ruleCount = (rule.min_rate_hz !== undefined ? 1 : 0) + (rule.max_gap_ms !== undefined ? 1 : 0);
      rules += ruleCount;
      if (!t || t.count === 0) {
        if (ruleCount > 0 && !profile.required_topics.includes(topic)) problems.push(`${topic} has no messages`);
        continue;
      }
      const rate = durationSec > 0 ? t.count / durationSec : 0;
      const gap = longestGap(t, scan.startTime!, scan.endTime!);
      measured[topic] = { count: t.count, rate_hz: rate, max_gap_ms: gap.ns / 1e6 };
      if (rule.min_rate_hz !== undefined && rate < rule.min_rate_hz) {
        problems.push(`${topic}: rate ${hz(rate)} is below the minimum ${rule.min_rate_hz} Hz`);
      }
      if (rule.max_gap_ms !== undefined && gap.ns > rule.max_gap_ms * 1e6) {
        problems.push(`${topic}: longest gap ${ms(gap.ns)} (${gap.where}) exceeds max_gap_ms ${rule.max_gap_ms}`);
      }
    }
    const metrics = { rules, failed_rules: problems.length, duration_sec: durationSec, topics: measured };
    if (problems.length > 0) {
      return failed(
        this,
        `profile not met: ${problems.join('; ')}`,
        metrics,
        rules > 0 ? 1 - problems.length / rules : 0,
      );
    }
    return passed(
      this,
      `profile met: ${profile.required_topics.length} required topics present, duration ${seconds(scan.durationNs)}, ${rules - profile.required_topics.length} other rules satisfied`,
      metrics,
    );
  },
};
