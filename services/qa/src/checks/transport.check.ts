import { failed, passed, type QaCheck } from './qa-check.js';

/** The object exists and is the upload's bytes: size and whole-file sha256 as declared by the device. */
export const transportCheck: QaCheck = {
  name: 'transport',
  version: 1,
  run({ scan, expected }) {
    const metrics = {
      expected_size_bytes: expected.size_bytes,
      expected_sha256: expected.sha256,
      size_bytes: scan?.bytesRead ?? null,
      sha256: scan?.sha256 ?? null,
    };
    if (!scan) return failed(this, 'object not found', metrics);
    const problems: string[] = [];
    if (scan.bytesRead !== expected.size_bytes) {
      problems.push(`size mismatch: expected ${expected.size_bytes} bytes, found ${scan.bytesRead}`);
    }
    if (scan.sha256 !== expected.sha256) {
      problems.push(`sha256 mismatch: expected ${expected.sha256}, found ${scan.sha256}`);
    }
    if (problems.length > 0) return failed(this, problems.join('; '), metrics);
    return passed(this, `object present: ${scan.bytesRead} bytes, sha256 matches the upload`, metrics);
  },
};
