import { describe, expect, it } from 'vitest';
import { BlobNotFoundError, BlobStorageError } from '../blob/blob-errors.js';
import { createPool } from '../db/database.js';
import { isDomainError } from '../errors/domain-error.js';
import { captureLogger, freePort, silentLogger, testDatabaseUrl } from '../testing/index.js';
import { DependencyMonitor, isPoolSaturated, isPostgresConnectionError } from './dependency-monitor.js';

describe('isPostgresConnectionError', () => {
  const pool = (url: string) =>
    createPool({ url, schema: 'public', applicationName: 'monitor-test', logger: silentLogger(), max: 1 });

  it('knows a refused connection and a lost one as Postgres outages', async () => {
    // A real refusal, as the pg driver reports it (nothing listens on port 1).
    const refusing = pool('postgres://postgres@127.0.0.1:1/test');
    const refused = await refusing.query('select 1').then(
      () => undefined,
      (err: unknown) => err,
    );
    await refusing.end();
    expect(refused).toMatchObject({ code: 'ECONNREFUSED' });
    expect(isPostgresConnectionError(refused)).toBe(true);
    expect(isPostgresConnectionError(new Error('Connection terminated unexpectedly'))).toBe(true);
    expect(isPostgresConnectionError(new Error('relation "x" does not exist'))).toBe(false);
  });

  it('knows a connection the server terminates (SQLSTATE 57P01) as an outage', async () => {
    const real = pool(testDatabaseUrl());
    real.on('error', () => undefined); // the terminated client also reports on the pool
    const client = await real.connect();
    client.on('error', () => undefined);
    const terminated = await client.query('select pg_terminate_backend(pg_backend_pid())').then(
      () => undefined,
      (err: unknown) => err,
    );
    client.release(true);
    await real.end();
    expect(terminated).toMatchObject({ code: '57P01' });
    expect(isPostgresConnectionError(terminated)).toBe(true);
  });

  it('takes a full pool (its one client held, a checkout timing out in its queue) for busy, not an outage', async () => {
    const full = createPool({
      url: testDatabaseUrl(),
      schema: 'public',
      applicationName: 'monitor-test',
      logger: silentLogger(),
      max: 1,
      connectionTimeoutMs: 200,
    });
    const held = await full.connect();
    let waited: unknown;
    try {
      waited = await full.query('select 1').then(
        () => undefined,
        (err: unknown) => err,
      );
    } finally {
      held.release();
      await full.end();
    }
    expect(waited).toMatchObject({ message: 'timeout exceeded when trying to connect' });
    expect(isPostgresConnectionError(waited)).toBe(false);
    expect(isPoolSaturated(waited)).toBe(true);
    // Answered like an outage (503 unavailable with Retry-After), but nothing is marked down or logged.
    const { logger, lines } = captureLogger();
    const monitor = new DependencyMonitor({ logger });
    const classified = monitor.classify(waited);
    monitor.close();
    expect(isDomainError(classified) && classified.code).toBe('unavailable');
    expect((classified as { details: Record<string, unknown> }).details).toEqual({
      reason: 'busy',
      retry_after_seconds: expect.any(Number),
    });
    expect(monitor.isDown('postgres')).toBe(false);
    expect(lines()).toEqual([]);
  });

  it('never takes a socket error that did not come from the pg driver for one', async () => {
    const bare = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
    const reset = new Error('request failed', {
      cause: Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }),
    });
    // Another client's real refusal: fetch (undici) wraps the socket error as its cause.
    const fetched = await fetch(`http://127.0.0.1:${await freePort()}/`).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect((fetched as { cause?: { code?: string } }).cause?.code).toBe('ECONNREFUSED');
    for (const err of [bare, reset, fetched]) {
      expect(isPostgresConnectionError(err), String(err)).toBe(false);
    }
    const monitor = new DependencyMonitor({ logger: silentLogger() });
    expect(monitor.classify(fetched)).toBe(fetched);
    expect(monitor.isDown('postgres')).toBe(false);
    monitor.close();
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
