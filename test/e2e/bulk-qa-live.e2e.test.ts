import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { SseParser, type StreamFrame } from '@ferry/cli';
import type { BulkRun } from '@ferry/contracts';
import { LocalBlobStore, newId } from '@ferry/platform';
import { type Kysely, sql } from 'kysely';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeRecording } from '../../services/qa/src/checks/testing/mcap-corpus.js';
import { type ServiceProcess, System } from '../support/system.js';

/**
 * Bulk QA over HTTP with the real QA service behind the gateway: the routes' answers, and the SSE relay
 * following a run that real QA workers carry out — resumed on another gateway replica.
 */
describe('bulk QA over HTTP, followed live', () => {
  let system: System;
  let replica: ServiceProcess;
  let token: string;
  let qaDb: Kysely<any>;

  beforeAll(async () => {
    system = await System.create();
    await system.start(['qa', 'gateway'], {
      env: { BULK_POLL_MS: '100', BULK_CONCURRENCY: '1', BULK_PROGRESS_INTERVAL_MS: '500' },
    });
    replica = await system.startReplica('gateway');
    qaDb = system.infra.database('qa').db;
  }, 120_000);
  afterAll(() => system?.shutdown());

  /** `n` approved episodes of `org` (a new organization, whose operator token `api` then uses, by default). */
  async function seed(n: number, org = uuidv7()) {
    const bytes = await writeRecording();
    const key = `fixtures/${newId()}.mcap`;
    await new LocalBlobStore({ root: system.blobDir }).put(key, Readable.from([Buffer.from(bytes)]));
    const mcap = JSON.stringify({
      object_key: key,
      size_bytes: bytes.byteLength,
      sha256: createHash('sha256').update(bytes).digest('hex'),
    });
    // Straight into QA's projection (its feed from production's events is proven in qa.e2e).
    await sql`
      insert into episodes (id, organization_id, task_id, order_id, scene_id, batch_id, device_id, upload_id, mcap,
                            episode_created_at, qa_status)
      select gen_random_uuid(), ${org}::uuid, gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), gen_random_uuid(),
             'arm-1', gen_random_uuid(), ${mcap}::jsonb, now(), 'approved'
      from generate_series(1, ${n})`.execute(qaDb);
    token = await system.token(org, 'operator');
    return org;
  }

  const api = (...args: Parameters<ReturnType<System['client']>>) => system.client(token)(...args);

  /** Reads frames from a gateway's events route until `stopAfter` says so or the server closes. */
  async function readFrames(
    base: string,
    runId: string,
    options: { lastEventId?: string; stopAfter?: (f: StreamFrame, all: StreamFrame[]) => boolean } = {},
  ): Promise<{ frames: StreamFrame[]; headers: Headers; closedByServer: boolean }> {
    const abort = new AbortController();
    const res = await fetch(`${base}/api/v1/data-ops/bulk-runs/${runId}/events`, {
      headers: {
        authorization: `Bearer ${token}`,
        ...(options.lastEventId ? { 'last-event-id': options.lastEventId } : {}),
      },
      signal: abort.signal,
    });
    expect(res.status).toBe(200);
    const parser = new SseParser();
    const frames: StreamFrame[] = [];
    const decoder = new TextDecoder();
    const reader = res.body!.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return { frames, headers: res.headers, closedByServer: true };
      for (const f of parser.push(decoder.decode(value, { stream: true }))) {
        frames.push(f);
        if (options.stopAfter?.(f, frames)) {
          abort.abort();
          await reader.cancel().catch(() => undefined);
          return { frames, headers: res.headers, closedByServer: false };
        }
      }
    }
  }

  it('answers the routes as documented: preview, confirm required, 202, 409 naming the active run, current 200/204', async () => {
    await seed(40);
    const preview = await api('POST', '/data-ops/bulk-qa', { filters: {} });
    expect(preview.status).toBe(200);
    expect(preview.body).toMatchObject({ status: 'preview', matched_count: 40 });
    const unconfirmed = await api('POST', '/data-ops/bulk-qa', { filters: {}, confirm: false });
    expect(unconfirmed.status).toBe(400);
    const [a, b] = await Promise.all([
      api('POST', '/data-ops/bulk-qa', { filters: {}, confirm: true }),
      api('POST', '/data-ops/bulk-qa', { filters: {}, confirm: true }),
    ]);
    const started = [a, b].find((r) => r.status === 202)!;
    const refused = [a, b].find((r) => r.status === 409)!;
    expect(started.body.status).toBe('queued');
    expect(refused.body).toMatchObject({ code: 'bulk_run_active', details: { run_id: started.body.run_id } });
    expect((await api('GET', '/data-ops/bulk-runs/current')).body.run_id).toBe(started.body.run_id);
    const { frames } = await readFrames(system.gatewayUrl, started.body.run_id);
    expect(frames.at(-1)!.event).toBe('bulk_run_completed');
    expect((await api('GET', '/data-ops/bulk-runs/current')).status).toBe(204);
    const history = await api('GET', '/data-ops/bulk-runs');
    expect(history.body.items.map((r: BulkRun) => r.run_id)).toContain(started.body.run_id);
  });

  it('never stores a preview under an Idempotency-Key: its counts are read fresh, and the key still starts a run, which a retry replays', async () => {
    const org = await seed(5);
    const key = { 'idempotency-key': `"${uuidv7()}"` };
    const first = await api('POST', '/data-ops/bulk-qa', { filters: {} }, key);
    expect(first).toMatchObject({ status: 200, body: { matched_count: 5 } });
    // A malformed key is refused on a preview too: the route takes keys, whether or not it stores this answer.
    const malformed = await api('POST', '/data-ops/bulk-qa', { filters: {} }, { 'idempotency-key': '""' });
    expect(malformed).toMatchObject({ status: 400, body: { code: 'idempotency_key_invalid' } });
    await seed(3, org);
    const again = await api('POST', '/data-ops/bulk-qa', { filters: {} }, key);
    expect(again).toMatchObject({ status: 200, body: { matched_count: 8 } });
    expect(again.headers.get('idempotency-replayed')).toBeNull();
    // Nothing was kept under the key: the start with it is a first request (not 422 for another body), and its
    // retry is the stored 202.
    const started = await api('POST', '/data-ops/bulk-qa', { filters: {}, confirm: true }, key);
    expect(started).toMatchObject({ status: 202, body: { total_count: 8 } });
    expect(started.headers.get('idempotency-replayed')).toBeNull();
    const retried = await api('POST', '/data-ops/bulk-qa', { filters: {}, confirm: true }, key);
    expect(retried).toMatchObject({ status: 202, body: { run_id: started.body.run_id } });
    expect(retried.headers.get('idempotency-replayed')).toBe('true');
    const { frames } = await readFrames(system.gatewayUrl, started.body.run_id);
    expect(frames.at(-1)!.event).toBe('bulk_run_completed');
  });

  it('pages the run history by cursor: newest first, every run once', async () => {
    await seed(1);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      // Over no episode: each run is born completed, so the next may start at once.
      const run = await api('POST', '/data-ops/bulk-qa', { filters: { device_id: 'nobody' }, confirm: true });
      expect(run.status).toBe(202);
      ids.push(run.body.run_id);
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page = await api('GET', `/data-ops/bulk-runs?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      expect(page.status).toBe(200);
      expect(page.body.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.body.items.map((r: BulkRun) => r.run_id));
      cursor = page.body.next_cursor;
      pages++;
    } while (cursor);
    expect(seen).toEqual([...ids].reverse());
    expect(pages).toBe(3);
    const bad = await api('GET', '/data-ops/bulk-runs?cursor=not-a-cursor');
    expect(bad).toMatchObject({ status: 400, body: { code: 'validation_failed' } });
  });

  it('streams a real run: snapshot, progress, one terminal event, then close; resumes on another gateway by Last-Event-ID', async () => {
    await seed(150);
    const run = await api('POST', '/data-ops/bulk-qa', { filters: {}, confirm: true });
    expect(run.status).toBe(202);
    const first = await readFrames(system.gatewayUrl, run.body.run_id, {
      stopAfter: (_f, all) => all.filter((x) => x.event === 'bulk_run_progress').length >= 2,
    });
    expect(first.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(first.headers.get('x-accel-buffering')).toBe('no');
    expect(first.frames[0]!.event).toBe('bulk_run_snapshot');
    const lastId = first.frames.at(-1)!.id!;
    // The second connection goes to the other gateway replica, resuming after the last id it saw.
    const second = await readFrames(`http://127.0.0.1:${replica.port}`, run.body.run_id, { lastEventId: lastId });
    expect(second.closedByServer).toBe(true);
    const all = [...first.frames, ...second.frames];
    const ids = all.map((f) => Number(f.id));
    expect(ids).toEqual([...ids].sort((x, y) => x - y));
    const relayed = all.filter((f) => f.event !== 'bulk_run_snapshot').map((f) => f.id);
    expect(new Set(relayed).size).toBe(relayed.length); // no repeat
    const versions = all.map((f) => (JSON.parse(f.data) as BulkRun).version);
    expect(versions).toEqual([...versions].sort((x, y) => x - y));
    const terminal = all.at(-1)!;
    expect(terminal.event).toBe('bulk_run_completed');
    const final = JSON.parse(terminal.data) as BulkRun;
    expect(final).toMatchObject({ status: 'completed', processed_count: 150, passed_count: 150 });
    for (const f of all) {
      const r = JSON.parse(f.data) as BulkRun;
      expect(r.processed_count).toBe(r.passed_count + r.qa_failed_count + r.processing_failed_count + r.skipped_count);
    }
  });
});
