import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { productionConsumers, transferConsumers } from '@ferry/contracts';
import { streamMessages, waitFor, waitForConsumerDrained, waitForEventsSettled } from '@ferry/platform/testing';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deviceWorld } from '../support/device-world.js';
import { Payload } from '../support/payload.js';
import { System } from '../support/system.js';

const MiB = 1024 * 1024;
const FAST = {
  UPLOAD_PART_SIZE: String(5 * MiB),
  UPLOAD_IDLE_TIMEOUT_MS: '1500',
  UPLOAD_ACK_TIMEOUT_MS: '1000',
  UPLOAD_MAX_REPUBLISH: '2',
  UPLOAD_SWEEP_INTERVAL_MS: '300',
};

/** Transfer's housekeeping: idle uploads expire with their parts; unacknowledged ones are republished, bounded. */
describe('upload housekeeping', () => {
  let system: System;
  beforeAll(async () => {
    system = await System.create();
    await system.start(['production', 'transfer', 'gateway'], { env: FAST });
  }, 120_000);
  afterAll(() => system?.shutdown());

  const metric = async (name: string) => {
    const text = await (await fetch(`${system.healthUrl('transfer')}/metrics`)).text();
    return Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)`, 'm').exec(text)?.[1] ?? 0);
  };

  it('expires an open upload that sees no part for the idle timeout and deletes its staged parts', async () => {
    const w = await deviceWorld(system);
    await w.device.api('POST', `/tasks/${w.taskIds[0]}/finish`, {});
    const mcap = new Payload(12 * MiB, 'idle');
    const uploader = w.uploader();
    const { body: u } = await uploader.open(w.taskIds[0]!, [
      { role: 'mcap', size_bytes: mcap.size, sha256: await mcap.sha256() },
    ]);
    const first = u.parts![0]!;
    await uploader.confirm(u.id, first, await uploader.putPart(first, mcap.stream(0, first.size_bytes)));
    const staged = async () => (await readdir(path.join(system.blobDir, 'multipart')).catch(() => [])).length;
    expect(await staged()).toBe(1);
    const expired = await waitFor(async () => (await uploader.get(u.id)).status === 'expired', {
      timeoutMs: 15_000,
      what: 'the upload to expire',
    });
    expect(expired).toBe(true);
    expect(await staged()).toBe(0);
    const late = u.parts![1]!;
    await expect(uploader.putPart(late, mcap.stream(late.size_bytes, late.size_bytes))).rejects.toMatchObject({
      status: 409,
    });
    // The task can take a new upload.
    expect((await uploader.open(w.taskIds[0]!, [{ role: 'mcap', size_bytes: 1, sha256: 'a'.repeat(64) }])).status).toBe(
      201,
    );
  });

  it('republishes upload.verified under its own id while production is away, at most UPLOAD_MAX_REPUBLISH times, then production acknowledges once', async () => {
    const w = await deviceWorld(system);
    await w.device.api('POST', `/tasks/${w.taskIds[0]}/finish`, {});
    const mcap = new Payload(1 * MiB, 'unacked');
    const uploader = w.uploader();
    const { body: u } = await uploader.open(w.taskIds[0]!, [
      { role: 'mcap', size_bytes: mcap.size, sha256: await mcap.sha256() },
    ]);
    await uploader.sendMissing(u.id, { mcap: (s, l) => mcap.stream(s, l) });
    await system.stop('production'); // nobody acknowledges now
    await uploader.complete(u.id);
    await waitFor(async () => (await uploader.get(u.id)).status === 'verified', { timeoutMs: 20_000 });
    const db = system.infra.database('transfer').db;
    const republished = async () =>
      (await sql<{ n: number }>`select republish_count as n from uploads where id = ${u.id}`.execute(db)).rows[0]!.n;
    await waitFor(async () => (await republished()) === 2, { timeoutMs: 20_000, what: 'two republications' });
    // Bounded: still 2 after sweeps spanning more than UPLOAD_ACK_TIMEOUT_MS (6 × ~300 ms), any of which would
    // have republished it again without the bound.
    const sweeps = await metric('ferry_upload_housekeeping_sweeps_total');
    await waitFor(async () => (await metric('ferry_upload_housekeeping_sweeps_total')) >= sweeps + 6, {
      timeoutMs: 20_000,
      what: 'six more housekeeping sweeps',
    });
    expect(await republished()).toBe(2);
    // Republished under the event's own id: the one outbox row of upload.verified, keyed by the upload id.
    const { rows } = await sql<{ id: string; event_type: string }>`
      select id, event_type from outbox where event_type = 'transfer.evt.upload.verified.v1' and payload->>'upload_id' = ${u.id}`.execute(
      db,
    );
    expect(rows).toEqual([{ id: u.id, event_type: 'transfer.evt.upload.verified.v1' }]);
    expect(await metric('ferry_upload_verified_republished_total')).toBe(2);
    expect(await metric('ferry_upload_ack_abandoned_total')).toBe(1);
    const lines = system.processes.get('transfer')!.lines;
    expect(
      lines.filter((l) => l.msg === 'upload verified but not acknowledged; upload.verified published again'),
    ).toHaveLength(1);
    expect(
      lines.filter(
        (l) => l.msg === 'upload.verified republished for the last time; production has still not acknowledged it',
      ),
    ).toHaveLength(1);
    // Production comes back: one episode, one acknowledgement, counted once everything has drained.
    await system.start(['production']);
    const done = await uploader.waitForOutcome(u.id, { timeoutMs: 30_000 });
    expect(done.status).toBe('acknowledged');
    const { jsm, ns } = system.infra;
    const settled = (stream: 'PRODUCTION' | 'TRANSFER', service: 'production' | 'transfer') =>
      waitForEventsSettled({
        jsm,
        stream: ns.stream(stream),
        outboxes: [system.infra.database(service).db],
        timeoutMs: 30_000,
      });
    await settled('TRANSFER', 'transfer');
    await waitForConsumerDrained({
      jsm,
      stream: ns.stream('TRANSFER'),
      durable: productionConsumers.uploadVerified.durable,
    });
    await settled('PRODUCTION', 'production');
    await waitForConsumerDrained({
      jsm,
      stream: ns.stream('PRODUCTION'),
      durable: transferConsumers.episodeCreated.durable,
    });
    await settled('TRANSFER', 'transfer');
    type About = { upload_id?: string; upload?: { id: string }; episode?: { upload_id: string } };
    const about = async (stream: 'PRODUCTION' | 'TRANSFER', type: string) =>
      (await streamMessages(jsm, ns.stream(stream))).filter((m) => {
        if (m.subject !== ns.subject(type)) return false;
        const body = m.json<About>();
        return (body.upload_id ?? body.upload?.id ?? body.episode?.upload_id) === u.id;
      });
    // The republications were the stored message under its own id (deduplicated); production answered it once.
    expect(await about('TRANSFER', 'transfer.evt.upload.verified.v1')).toHaveLength(1);
    expect(await about('PRODUCTION', 'production.evt.episode.created.v1')).toHaveLength(1);
    expect(await about('TRANSFER', 'transfer.evt.upload.acknowledged.v1')).toHaveLength(1);
    const episodes = await w.operator('GET', `/episodes?task_id=${u.task_id}`);
    expect(episodes.body.items.map((e: { id: string }) => e.id)).toEqual([done.episode_id]);
  });
});
