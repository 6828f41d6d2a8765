import { describe, expect, it } from 'vitest';
import { BlobNotFoundError, BlobStorageError } from '../blob/blob-errors.js';
import { silentLogger } from '../testing/index.js';
import { DependencyMonitor, isPostgresConnectionError } from './dependency-monitor.js';

describe('isPostgresConnectionError', () => {
  it('knows a refused connection and a lost one as Postgres outages', () => {
    expect(isPostgresConnectionError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))).toBe(
      true,
    );
    expect(isPostgresConnectionError(new Error('Connection terminated unexpectedly'))).toBe(true);
    expect(isPostgresConnectionError(new Error('relation "x" does not exist'))).toBe(false);
  });

  it('never takes an object store error for one, whatever socket error or message it wraps', () => {
    const refused = new BlobStorageError('createMultipart', 'k', { cause: { code: 'ECONNREFUSED' } });
    const timedOut = new BlobStorageError('get', 'k', {
      cause: Object.assign(new Error('Connection closed'), { code: 'ETIMEDOUT' }),
    });
    const missing = new BlobNotFoundError('k', { cause: { code: 'ECONNRESET' } });
    for (const err of [refused, timedOut, missing, new Error('handler failed', { cause: refused })]) {
      expect(isPostgresConnectionError(err), err.message).toBe(false);
    }
  });

  it('leaves an object store error unclassified, and Postgres up', () => {
    const monitor = new DependencyMonitor({ logger: silentLogger() });
    const err = new BlobStorageError('createMultipart', 'k', { cause: { code: 'ECONNREFUSED' } });
    expect(monitor.classify(err)).toBe(err);
    expect(monitor.isDown('postgres')).toBe(false);
    monitor.close();
  });
});
