import type { Finding, FindingCode, FindingSeverity } from './mcap-scan.types.js';

/** Findings in file order, at most `maxPerCode` kept per code (a damaged file can repeat one a million times); all counted. */
export class FindingLog {
  readonly findings: Finding[] = [];
  readonly counts: Partial<Record<FindingCode, number>> = {};
  errors = 0;
  warnings = 0;

  constructor(private readonly maxPerCode: number) {}

  error(code: FindingCode, message: string, offset?: number): void {
    this.#add('error', code, message, offset);
  }

  warn(code: FindingCode, message: string, offset?: number): void {
    this.#add('warning', code, message, offset);
  }

  #add(severity: FindingSeverity, code: FindingCode, message: string, offset?: number): void {
    const n = (this.counts[code] ?? 0) + 1;
    this.counts[code] = n;
    if (severity === 'error') this.errors++;
    else this.warnings++;
    if (n > this.maxPerCode) return;
    this.findings.push(offset === undefined ? { severity, code, message } : { severity, code, message, offset });
  }
}
