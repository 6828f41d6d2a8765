import net from 'node:net';
import type { BulkRun } from '@ferry/contracts';
import { StreamTickets } from '@ferry/gateway';
import { waitFor } from '@ferry/platform/testing';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FakeQaBulkRuns } from '../support/fake-qa-bulk-runs.js';
import { type EventsResult, type ReceivedFrame, readEvents } from '../support/sse-client.js';
import { type ServiceProcess, System } from '../support/system.js';

/**
 * The gateway's SSE relay for bulk runs (DESIGN §8) against a real gateway process and real JetStream.
 * QA's side (its RPCs and events) is played by FakeQaBulkRuns, which answers as QA does and publishes what a test
 * needs when it needs it (the QA service itself is tested end to end in bulk-qa.e2e and bulk-qa-live.e2e).
 */
const HEARTBEAT_MS = 400;
const org = uuidv7();
const otherOrg = uuidv7();

describe('bulk run event stream (SSE relay)', () => {
  let system: System;
  let qa: FakeQaBulkRuns;
  let token: string;
  let replica: ServiceProcess;
  const env = { SSE_HEARTBEAT_MS: String(HEARTBEAT_MS) };

  beforeAll(async () => {
    system = await System.create();
    await system.start(['gateway'], { env });
    replica = await system.startReplica('gateway', env);
    qa = new FakeQaBulkRuns(system);
    token = await system.token(org, 'operator');
  }, 120_000);
  afterAll(async () => {
    await qa?.stop();
    await system?.shutdown();
  });

  const base = (port = system.processes.get('gateway')!.port) => `http://127.0.0.1:${port}`;
  const eventsUrl = (id: string, port?: number) => `${base(port)}/api/v1/data-ops/bulk-runs/${id}/events`;
  const auth = (t = token) => ({ authorization: `Bearer ${t}` });
  const runOf = (f: ReceivedFrame) => JSON.parse(f.data) as BulkRun;
  const names = (r: EventsResult) => r.frames.map((f) => f.event);
  const metrics = async (proc = system.processes.get('gateway')!) => {
    const text = await (await fetch(`http://127.0.0.1:${proc.healthPort}/metrics`)).text();
    const value = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
    return {
      connections: value('ferry_sse_connections'),
      subscriptions: value('ferry_sse_subscriptions'),
      timers: value('ferry_sse_timers'),
      dropped: value('ferry_sse_slow_clients_dropped_total'),
    };
  };
  // The relay's ordered consumers are ephemeral; durable ones (production__qa-status) belong to services.
  const relayConsumers = async () => {
    const out: string[] = [];
    for await (const c of system.infra.jsm.consumers.list(qa.stream)) if (!c.config.durable_name) out.push(c.name);
    return out;
  };

  const released = async (proc: ServiceProcess) => {
    const m = await metrics(proc);
    return m.connections === 0 && m.subscriptions === 0 && m.timers === 0;
  };
  // Every test ends with every stream released on both replicas and no relay consumer left on the
  // server: a leak fails the test that caused it, and no test starts with another's streams still
  // counted (a client sees the end of a stream a moment before the server has disposed of it).
  afterEach(async () => {
    for (const proc of [system.processes.get('gateway')!, replica]) {
      await waitFor(() => released(proc), { timeoutMs: 30_000, what: `every stream released on port ${proc.port}` });
    }
    await waitFor(async () => (await relayConsumers()).length === 0, {
      timeoutMs: 30_000,
      what: 'no relay consumer left on the server',
    });
  });

  it('sends snapshot, progress and one terminal frame with stream sequences as ids, then closes', async () => {
    const run = qa.create(org);
    const L = await qa.lastSeq();
    let published: Promise<void> | undefined;
    const stream = readEvents(eventsUrl(run.run_id), {
      headers: auth(),
      onFrame: (_f, all) => {
        if (all.length === 1) published = publishAll();
      },
    });
    const seqs: number[] = [];
    const publishAll = async () => {
      seqs.push(await qa.step(run.run_id));
      seqs.push(await qa.step(run.run_id, { failed: 'mcap_integrity@1' }));
      seqs.push(await qa.step(run.run_id));
      seqs.push(await qa.finish(run.run_id, 'completed'));
    };
    const result = await stream.done;
    // The terminal frame can reach the client before the publisher has its PubAck (the last seq).
    await published;

    expect(result.status).toBe(200);
    expect(result.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    expect(result.headers['cache-control']).toMatch(/^no-cache/);
    expect(result.headers['x-accel-buffering']).toBe('no');
    expect(result.headers.connection).toBe('keep-alive');
    // The retry hint and a comment go out at once, before any event.
    expect(result.raw.startsWith('retry: 3000\n\n: connected\n\n')).toBe(true);
    expect(result.ended).toBe('closed');
    expect(names(result)).toEqual([
      'bulk_run_snapshot',
      'bulk_run_progress',
      'bulk_run_progress',
      'bulk_run_progress',
      'bulk_run_completed',
    ]);
    expect(result.frames.map((f) => Number(f.id))).toEqual([L, ...seqs]);
    expect(result.frames.map((f) => runOf(f).processed_count)).toEqual([0, 1, 2, 3, 3]);
    expect(runOf(result.frames[2]!).failures_by_check).toEqual({ 'mcap_integrity@1': 1 });
  });

  it('drops a frame whose version is not above the one already sent (published before the snapshot was read)', async () => {
    const run = qa.create(org, { version: 5 });
    const stream = readEvents(eventsUrl(run.run_id), {
      headers: auth(),
      onFrame: (_f, all) => {
        if (all.length !== 1) return;
        void (async () => {
          await qa.publish('progress', { ...run, version: 4, processed_count: 9 });
          await qa.step(run.run_id);
          await qa.finish(run.run_id);
        })();
      },
    });
    const result = await stream.done;
    expect(names(result)).toEqual(['bulk_run_snapshot', 'bulk_run_progress', 'bulk_run_completed']);
    expect(result.frames.map((f) => runOf(f).version)).toEqual([5, 6, 7]);
  });

  it('resumes with Last-Event-ID on another gateway replica: every later frame exactly once', async () => {
    const run = qa.create(org, { total_count: 12 });
    // A reads everything; B goes away after 4 frames and comes back (to the replica) with its last id.
    let bStopped!: () => void;
    const bStoppedAt = new Promise<void>((r) => {
      bStopped = r;
    });
    const a = readEvents(eventsUrl(run.run_id), { headers: auth(), timeoutMs: 30_000 });
    const b1 = readEvents(eventsUrl(run.run_id), {
      headers: auth(),
      stopAfter: 4,
      onFrame: (_f, all) => {
        if (all.length === 4) bStopped();
      },
    });
    await waitFor(async () => (await metrics()).subscriptions >= 2, { timeoutMs: 30_000 });
    for (let i = 0; i < 6; i++) await qa.step(run.run_id, i % 3 === 0 ? { failed: 'empty_recording@1' } : {});
    await bStoppedAt;
    const first = await b1.done;
    // Published while B is away.
    for (let i = 0; i < 3; i++) await qa.step(run.run_id);
    const lastId = first.frames.at(-1)!.id!;
    const b2 = readEvents(eventsUrl(run.run_id, replica.port), { headers: { ...auth(), 'last-event-id': lastId } });
    await waitFor(async () => (await metrics(replica)).subscriptions >= 1, { timeoutMs: 30_000 });
    for (let i = 0; i < 3; i++) await qa.step(run.run_id);
    await qa.finish(run.run_id);
    const [all, second] = await Promise.all([a.done, b2.done]);

    expect(all.ended).toBe('closed');
    expect(names(all)).toEqual(['bulk_run_snapshot', ...Array(12).fill('bulk_run_progress'), 'bulk_run_completed']);
    // No snapshot on a resume: it continues right after the id.
    expect(second.frames[0]!.event).toBe('bulk_run_progress');
    expect(Number(second.frames[0]!.id)).toBeGreaterThan(Number(lastId));
    const union = [...first.frames, ...second.frames].map((f) => `${f.id}:${f.event}:${f.data}`);
    expect(new Set(union).size).toBe(union.length);
    expect(union).toEqual(all.frames.map((f) => `${f.id}:${f.event}:${f.data}`));
  });

  it('resumes from ?last_event_id= as well (a first EventSource connect cannot set the header)', async () => {
    const run = qa.create(org);
    const s1 = await qa.step(run.run_id);
    const s2 = await qa.step(run.run_id);
    const s3 = await qa.finish(run.run_id);
    const result = await readEvents(`${eventsUrl(run.run_id)}?last_event_id=${s1}`, { headers: auth() }).done;
    expect(names(result)).toEqual(['bulk_run_progress', 'bulk_run_completed']);
    expect(result.frames.map((f) => Number(f.id))).toEqual([s2, s3]);
  });

  it('sends a fresh snapshot when the id is older than the stream keeps', async () => {
    const run = qa.create(org);
    const old = await qa.step(run.run_id);
    await qa.step(run.run_id);
    // Age out everything up to here: the stream's first sequence passes the client's id.
    const L = await qa.lastSeq();
    await system.infra.jsm.streams.purge(qa.stream, { seq: L + 1 });
    const stream = readEvents(eventsUrl(run.run_id), {
      headers: { ...auth(), 'last-event-id': String(old) },
      onFrame: (_f, all) => {
        if (all.length === 1) void qa.finish(run.run_id);
      },
    });
    const result = await stream.done;
    expect(names(result)).toEqual(['bulk_run_snapshot', 'bulk_run_completed']);
    expect(Number(result.frames[0]!.id)).toBe(L);
    expect(runOf(result.frames[0]!).processed_count).toBe(2);
  });

  it('sends a fresh snapshot when the id is past the end of the stream (not one this stream sent)', async () => {
    const run = qa.create(org);
    await qa.step(run.run_id);
    const L = await qa.lastSeq();
    const stream = readEvents(eventsUrl(run.run_id), {
      headers: { ...auth(), 'last-event-id': String(L + 1_000) },
      onFrame: (_f, all) => {
        if (all.length === 1) void qa.finish(run.run_id);
      },
    });
    const result = await stream.done;
    expect(names(result)).toEqual(['bulk_run_snapshot', 'bulk_run_completed']);
    expect(Number(result.frames[0]!.id)).toBe(L);
  });

  it('on a resume after the run ended without its terminal event, relays what is left, then ends with the terminal frame', async () => {
    const run = qa.create(org);
    const s1 = await qa.step(run.run_id);
    const s2 = await qa.step(run.run_id);
    await qa.finish(run.run_id, 'interrupted', { publish: false });
    const behind = await readEvents(eventsUrl(run.run_id), { headers: { ...auth(), 'last-event-id': String(s1) } })
      .done;
    expect(behind.ended).toBe('closed');
    expect(names(behind)).toEqual(['bulk_run_progress', 'bulk_run_interrupted']);
    expect(Number(behind.frames[0]!.id)).toBe(s2);
    expect(runOf(behind.frames[1]!).status).toBe('interrupted');
    // Already past every event of the run: the terminal frame at once, not after a heartbeat.
    const caughtUp = await readEvents(eventsUrl(run.run_id), { headers: { ...auth(), 'last-event-id': String(s2) } })
      .done;
    expect(names(caughtUp)).toEqual(['bulk_run_interrupted']);
    expect(caughtUp.comments).not.toContain('ping');
  });

  it('answers a finished run with its snapshot and terminal frame, then closes', async () => {
    const run = qa.create(org, { status: 'cancelled', finished_at: new Date().toISOString() });
    const L = await qa.lastSeq();
    const result = await readEvents(eventsUrl(run.run_id), { headers: auth() }).done;
    expect(result.ended).toBe('closed');
    expect(names(result)).toEqual(['bulk_run_snapshot', 'bulk_run_cancelled']);
    expect(result.frames.map((f) => Number(f.id))).toEqual([L, L]);
  });

  it('ends the stream at the next heartbeat when the terminal event was lost', async () => {
    const run = qa.create(org);
    const stream = readEvents(eventsUrl(run.run_id), {
      headers: auth(),
      onFrame: (_f, all) => {
        if (all.length === 1) {
          void (async () => {
            await qa.step(run.run_id);
            await qa.finish(run.run_id, 'failed', { publish: false });
          })();
        }
      },
    });
    const result = await stream.done;
    expect(result.ended).toBe('closed');
    expect(names(result)).toEqual(['bulk_run_snapshot', 'bulk_run_progress', 'bulk_run_failed']);
    // The terminal event was never published: the heartbeat's re-read of the snapshot is what found the run
    // failed, so the terminal frame comes right after a `: ping` in the bytes on the wire.
    expect(result.raw).toMatch(/event: bulk_run_progress\n.*: ping\n\nevent: bulk_run_failed\n/s);
    expect(runOf(result.frames.at(-1)!).status).toBe('failed');
  });

  it('disconnects a client that reads nothing while another keeps receiving', async () => {
    const run = qa.create(org, { total_count: 200 });
    const before = await metrics();
    // A raw client that sends its request and never reads a byte.
    const port = system.processes.get('gateway')!.port;
    const slow = net.connect({ host: '127.0.0.1', port });
    try {
      slow.pause();
      let slowClosed = false;
      slow.on('close', () => {
        slowClosed = true;
      });
      slow.on('error', () => undefined);
      slow.write(
        `GET /api/v1/data-ops/bulk-runs/${run.run_id}/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\n\r\n`,
      );
      const normal = readEvents(eventsUrl(run.run_id), { headers: auth(), timeoutMs: 60_000 });
      await waitFor(async () => (await metrics()).subscriptions === 2, { timeoutMs: 30_000, what: 'both clients' });
      // ~64 KB frames: far more than the socket buffers plus the 1 MiB queue.
      const failures = Object.fromEntries(Array.from({ length: 2_000 }, (_, i) => [`check_${i}@1`, i]));
      for (let i = 0; i < 150; i++) await qa.step(run.run_id, {}, { failures_by_check: failures });
      await qa.finish(run.run_id);
      const result = await normal.done;
      expect(result.ended).toBe('closed');
      expect(result.frames).toHaveLength(152);
      expect(result.frames.at(-1)!.event).toBe('bulk_run_completed');
      await waitFor(async () => (await metrics()).dropped >= before.dropped + 1, { timeoutMs: 30_000 });
      // The server, not this test, let go of the slow client.
      await waitFor(async () => slowClosed || (await metrics()).connections === 0, { timeoutMs: 30_000 });
    } finally {
      slow.destroy();
    }
  });

  it('leaves no subscriptions, timers or consumers after 100 clients come and go', async () => {
    const run = qa.create(org);
    const clients = Array.from({ length: 100 }, (_, i) =>
      // Half go away after the snapshot; half stay to the terminal frame.
      readEvents(eventsUrl(run.run_id, i % 4 === 0 ? replica.port : undefined), {
        headers: auth(),
        stopAfter: i % 2 === 0 ? 1 : undefined,
        timeoutMs: 30_000,
      }),
    );
    await waitFor(async () => (await metrics()).subscriptions + (await metrics(replica)).subscriptions >= 50, {
      timeoutMs: 30_000,
    });
    await qa.step(run.run_id);
    await qa.finish(run.run_id);
    const results = await Promise.all(clients.map((c) => c.done));
    expect(results.filter((r) => r.ended === 'closed')).toHaveLength(50);
    for (const r of results.filter((x) => x.ended === 'closed'))
      expect(r.frames.at(-1)!.event).toBe('bulk_run_completed');
    for (const proc of [system.processes.get('gateway')!, replica]) {
      await waitFor(
        async () => {
          const m = await metrics(proc);
          return m.connections === 0 && m.subscriptions === 0 && m.timers === 0;
        },
        { timeoutMs: 30_000 },
      );
    }
    // Nothing left on the server either: every ordered consumer was deleted, none left to expire.
    expect(await relayConsumers()).toEqual([]);
  });

  it('answers 404 problem+json before any stream starts for an unknown or another org’s run', async () => {
    const foreign = qa.create(otherOrg);
    for (const id of [uuidv7(), foreign.run_id]) {
      const result = await readEvents(eventsUrl(id), { headers: auth() }).done;
      expect(result.status).toBe(404);
      expect(result.headers['content-type']).toBe('application/problem+json');
      expect(JSON.parse(result.raw).code).toBe('not_found');
    }
    const bad = await readEvents(eventsUrl(foreign.run_id), { headers: { ...auth(), 'last-event-id': 'x1' } }).done;
    expect(bad.status).toBe(400);
    expect(JSON.parse(bad.raw).errors).toEqual([{ path: 'header.last-event-id', message: expect.any(String) }]);
    expect(await relayConsumers()).toEqual([]);
  });

  describe('stream tickets', () => {
    const ticketFor = async (id: string, t = token) => {
      const res = await fetch(`${base()}/api/v1/data-ops/bulk-runs/${id}/events-ticket`, {
        method: 'POST',
        headers: auth(t),
      });
      return { status: res.status, body: (await res.json()) as { ticket: string; events_url: string; code?: string } };
    };

    it('opens the events of its run without an Authorization header, and of no other', async () => {
      const run = qa.create(org, { status: 'completed' });
      const other = qa.create(org, { status: 'completed' });
      const viewer = await system.token(org, 'viewer');
      const { status, body } = await ticketFor(run.run_id, viewer);
      expect(status).toBe(200);
      expect(body.ticket).toMatch(/^fet_/);
      expect(body.events_url).toBe(`${base()}/api/v1/data-ops/bulk-runs/${run.run_id}/events?ticket=${body.ticket}`);
      expect(body.events_url).not.toContain(viewer);
      const ok = await readEvents(body.events_url).done;
      expect(ok.status).toBe(200);
      expect(names(ok)).toEqual(['bulk_run_snapshot', 'bulk_run_completed']);
      const elsewhere = await readEvents(`${eventsUrl(other.run_id)}?ticket=${body.ticket}`).done;
      expect(elsewhere.status).toBe(403);
      expect(JSON.parse(elsewhere.raw).code).toBe('forbidden');
      // Not a credential for any other route either.
      const res = await fetch(`${base()}/api/v1/data-ops/bulk-runs/${run.run_id}?ticket=${body.ticket}`);
      expect(res.status).toBe(401);
    });

    it('refuses an expired ticket, a forged one and a bearer token in the query with 401', async () => {
      const run = qa.create(org, { status: 'completed' });
      const expired = new StreamTickets({ secret: system.jwtSecret, now: () => Date.now() - 3_600_000 }).issue(
        { kind: 'user', sub: 'operator-test', org, role: 'operator' },
        `bulk_run:${run.run_id}`,
      ).ticket;
      const forged = new StreamTickets({ secret: 'z'.repeat(40) }).issue(
        { kind: 'user', sub: 'operator-test', org, role: 'operator' },
        `bulk_run:${run.run_id}`,
      ).ticket;
      for (const ticket of [expired, forged, token]) {
        const result = await readEvents(`${eventsUrl(run.run_id)}?ticket=${encodeURIComponent(ticket)}`).done;
        expect(result.status).toBe(401);
        expect(result.headers['content-type']).toBe('application/problem+json');
      }
      expect((await readEvents(`${eventsUrl(run.run_id)}?access_token=${token}`).done).status).toBe(401);
      expect((await readEvents(eventsUrl(run.run_id)).done).status).toBe(401);
    });

    it('is not issued for an unknown run', async () => {
      const { status, body } = await ticketFor(uuidv7());
      expect(status).toBe(404);
      expect(body.code).toBe('not_found');
    });
  });

  describe('bulk QA routes', () => {
    const api = (method: string, path: string, body?: unknown, t?: string) =>
      fetch(`${base()}/api/v1${path}`, {
        method,
        headers: { ...auth(t), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
      }).then(async (res) => ({
        status: res.status,
        body: (res.status === 204 ? undefined : await res.json()) as any,
      }));
    const routesOrg = uuidv7();

    it('previews without confirm, refuses confirm: false, starts with confirm: true, and refuses a second run with its id', async () => {
      const t = await system.token(routesOrg, 'operator');
      expect((await api('GET', '/data-ops/bulk-runs/current', undefined, t)).status).toBe(204);
      const preview = await api('POST', '/data-ops/bulk-qa', { filters: { qa_status: ['failed'] } }, t);
      expect(preview).toMatchObject({ status: 200, body: { status: 'preview', eligible_count: 10 } });
      const refused = await api('POST', '/data-ops/bulk-qa', { confirm: false }, t);
      expect(refused.status).toBe(400);
      expect(refused.body.errors).toEqual([
        { path: 'body.confirm', message: 'must be true to start a run; omit it for a preview' },
      ]);
      const started = await api('POST', '/data-ops/bulk-qa', { confirm: true }, t);
      expect(started.status).toBe(202);
      expect(started.body.organization_id).toBe(routesOrg);
      const again = await api('POST', '/data-ops/bulk-qa', { confirm: true }, t);
      expect(again.status).toBe(409);
      expect(again.body).toMatchObject({
        code: 'bulk_run_active',
        details: { run_id: started.body.run_id, status: 'queued' },
      });
      expect((await api('GET', '/data-ops/bulk-runs/current', undefined, t)).body.run_id).toBe(started.body.run_id);
      expect((await api('GET', `/data-ops/bulk-runs/${started.body.run_id}`, undefined, t)).status).toBe(200);
      const list = await api('GET', '/data-ops/bulk-runs?status=running,queued', undefined, t);
      expect(list.body.items.map((r: BulkRun) => r.run_id)).toEqual([started.body.run_id]);
      const cancelled = await api('POST', `/data-ops/bulk-runs/${started.body.run_id}/cancel`, undefined, t);
      expect(cancelled.status).toBe(200);
      // Queued, nothing of it claimed: QA ends it at once; a second cancel answers it as it is.
      expect(cancelled.body).toMatchObject({ status: 'cancelled', cancel_requested_at: expect.any(String) });
      const recancelled = await api('POST', `/data-ops/bulk-runs/${started.body.run_id}/cancel`, undefined, t);
      expect(recancelled).toMatchObject({
        status: 200,
        body: { status: 'cancelled', version: cancelled.body.version },
      });
      const viewer = await system.token(routesOrg, 'viewer');
      expect((await api('POST', '/data-ops/bulk-qa', {}, viewer)).status).toBe(403);
      expect((await api('GET', '/data-ops/bulk-runs', undefined, viewer)).status).toBe(200);
    });
  });
});
