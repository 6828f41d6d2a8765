import type { QaProfile, RecordingMetadata } from '@ferry/contracts';
import type { McapScan } from './mcap-scan.types.js';

export type CheckStatus = 'passed' | 'failed' | 'skipped';

export interface CheckResult {
  name: string;
  version: number;
  status: CheckStatus;
  /** status === 'passed'. A skipped check has not passed. */
  passed: boolean;
  /** 0..1; 1 for passed, 0 for skipped. */
  score: number;
  /** Human text, exact and stable: tests and operators read it. */
  details: string;
  metrics: Record<string, unknown>;
}

/** What the one pass established, and what the upload promised. */
export interface QaCheckInput {
  /** null when the object does not exist. */
  scan: McapScan | null;
  expected: { size_bytes: number; sha256: string };
  recording: RecordingMetadata | null;
  profile: QaProfile | null;
}

/** A versioned check (`name@version`): a pure function of the scan. Bump the version when its verdicts change. */
export interface QaCheck {
  readonly name: string;
  readonly version: number;
  run(input: QaCheckInput): CheckResult;
}

export const checkId = (check: Pick<QaCheck, 'name' | 'version'>) => `${check.name}@${check.version}`;

export function passed(check: QaCheck, details: string, metrics: Record<string, unknown> = {}): CheckResult {
  return { name: check.name, version: check.version, status: 'passed', passed: true, score: 1, details, metrics };
}

export function failed(check: QaCheck, details: string, metrics: Record<string, unknown> = {}, score = 0): CheckResult {
  return { name: check.name, version: check.version, status: 'failed', passed: false, score, details, metrics };
}

export function skipped(check: QaCheck, details: string, metrics: Record<string, unknown> = {}): CheckResult {
  return { name: check.name, version: check.version, status: 'skipped', passed: false, score: 0, details, metrics };
}

/** Nanoseconds as seconds with 3 decimals, e.g. "12.500 s". */
export const seconds = (ns: number) => `${(ns / 1e9).toFixed(3)} s`;

/** bigint → string for JSON metrics. */
export const time = (t: bigint | null) => (t === null ? null : t.toString());

/** Joins at most `max` items with "; ", then says how many were left out. */
export function firstFew(items: readonly string[], max: number, total = items.length): string {
  const shown = items.slice(0, max).join('; ');
  return total > max ? `${shown}; and ${total - max} more` : shown;
}
