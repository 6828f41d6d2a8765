import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { SseParser, type StreamFrame } from '@ferry/cli';
import type { BulkRun } from '@ferry/contracts';
import { LocalBlobStore, newId } from '@ferry/platform';
import { sql } from 'kysely';
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

  beforeAll(async () => {
    system = await System.create();
    await system.start(['qa', 'gateway'], {
      env: { BULK_POLL_MS: '100', BULK_CONCURRENCY: '1', BULK_PROGRESS_INTERVAL_MS: '500' },
    });
    replica = await system.startReplica('gateway');
  }, 120_000);
  afterAll(() => system?.shutdown());

  async function seed(n: number) {
    const org = uuidv7();
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
      from generate_series(1, ${n})`.execute(system.infra.database('qa').db);
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
