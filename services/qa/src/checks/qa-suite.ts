import type { QaProfile, RecordingMetadata } from '@ferry/contracts';
import { logTimeOrderCheck } from './log-time-order.check.js';
import { mcapIntegrityCheck } from './mcap-integrity.check.js';
import { type ScanOptions, type ScanProgress, scanMcap } from './mcap-scan.js';
import { notEmptyCheck } from './not-empty.check.js';
import { profileCheck } from './profile.check.js';
import type { CheckResult, QaCheck } from './qa-check.js';
import { sidecarConsistencyCheck } from './sidecar-consistency.check.js';
import { transportCheck } from './transport.check.js';

/** Every check, in the order results are reported. Adding one: docs/qa.md, "Adding a check". */
export const QA_CHECKS: readonly QaCheck[] = [
  transportCheck,
  mcapIntegrityCheck,
  notEmptyCheck,
  logTimeOrderCheck,
  sidecarConsistencyCheck,
  profileCheck,
];

/** Recorded with each run; changes whenever a check's version does. */
export const QA_SUITE_VERSION = `ferry-qa/1 ${QA_CHECKS.map((c) => `${c.name}@${c.version}`).join(',')}`;

export interface QaSuiteInput {
  /**
   * Opens the recording as a byte stream; null means the object does not exist (a transport failure). Anything
   * it throws, and anything the stream throws, is a storage error: runQaSuite rejects with it.
   */
  open: () => Promise<AsyncIterable<Uint8Array> | null>;
  expected: { size_bytes: number; sha256: string };
  recording?: RecordingMetadata | null;
  profile?: QaProfile | null;
  signal?: AbortSignal;
  /** Called about once a second while reading (see ScanOptions.onProgress). */
  onProgress?: (progress: ScanProgress) => void;
  /** Scanner tuning (record limit, where the digest runs); the defaults suit the service. */
  scan?: Pick<ScanOptions, 'maxRecordBytes' | 'digest' | 'progressIntervalMs' | 'workerThresholdBytes'>;
}

export interface QaSuiteResult {
  suite_version: string;
  results: CheckResult[];
  /** Every check that ran passed (skipped ones do not count either way). */
  passed: boolean;
  /** Mean score of the checks that ran. */
  score: number;
  metrics: { bytes: number; duration_ms: number; mb_per_s: number };
}

/**
 * Runs every check over one streaming pass of the recording. Storage errors are not QA failures: when open() or
 * the stream throws, this rejects with that error (the caller releases its claim and retries) and no result
 * exists; only a null from open() means "missing" and becomes a failed transport check.
 */
export async function runQaSuite(input: QaSuiteInput): Promise<QaSuiteResult> {
  const started = performance.now();
  const source = await input.open();
  const scan =
    source === null
      ? null
      : await scanMcap(source, {
          ...input.scan,
          signal: input.signal,
          onProgress: input.onProgress,
          expectedBytes: input.expected.size_bytes,
        });
  const checkInput = {
    scan,
    expected: input.expected,
    recording: input.recording ?? null,
    profile: input.profile ?? null,
  };
  const results = QA_CHECKS.map((check) => check.run(checkInput));
  const ran = results.filter((r) => r.status !== 'skipped');
  const durationMs = performance.now() - started;
  const bytes = scan?.bytesRead ?? 0;
  return {
    suite_version: QA_SUITE_VERSION,
    results,
    passed: ran.length > 0 && ran.every((r) => r.passed),
    score: ran.length > 0 ? ran.reduce((sum, r) => sum + r.score, 0) / ran.length : 0,
    metrics: {
      bytes,
      duration_ms: Math.round(durationMs),
      mb_per_s: durationMs > 0 ? Math.round((bytes / 1e6 / (durationMs / 1e3)) * 10) / 10 : 0,
    },
  };
}
