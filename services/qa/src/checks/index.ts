export { QaProfile, QaTopicRule } from '@ferry/contracts';
export { type Decompressors, loadDecompressors } from './decompressors.js';
export { logTimeOrderCheck } from './log-time-order.check.js';
export { INTEGRITY_DETAIL_FINDINGS, mcapIntegrityCheck } from './mcap-integrity.check.js';
export { type ScanOptions, type ScanProgress, scanMcap } from './mcap-scan.js';
export type {
  ChannelFacts,
  Finding,
  FindingCode,
  FindingSeverity,
  McapScan,
  OrderViolation,
  SchemaFacts,
  TopicFacts,
} from './mcap-scan.types.js';
export { DEFAULT_MAX_RECORD_BYTES } from './mcap-scanner.js';
export { notEmptyCheck } from './not-empty.check.js';
export { profileCheck } from './profile.check.js';
export { type CheckResult, type CheckStatus, checkId, type QaCheck, type QaCheckInput } from './qa-check.js';
export { QA_CHECKS, QA_SUITE_VERSION, type QaSuiteInput, type QaSuiteResult, runQaSuite } from './qa-suite.js';
export {
  SIDECAR_TOLERANCES,
  sidecarConsistencyCheck,
  sidecarDurationToleranceSec,
} from './sidecar-consistency.check.js';
export { transportCheck } from './transport.check.js';
