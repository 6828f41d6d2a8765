import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { qaConsumers, qaEpisodeEvents } from '@ferry/contracts';
import { startS3rver, waitFor, waitForConsumerDrained } from '@ferry/platform/testing';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { goodSidecar, writeLargeMcap, writeRecording } from '../../services/qa/src/checks/testing/mcap-corpus.js';
import { type DeviceWorld, deviceWorld } from '../support/device-world.js';
import { sidecarOf, uploadRecording } from '../support/recordings.js';
import { exitWithin, System } from '../support/system.js';

const MiB = 1024 * 1024;

async function qaStatus(w: DeviceWorld, episodeId: string) {
  return (await w.operator('GET', `/qa/episodes/${episodeId}`)).body;
}
async function runsOf(w: DeviceWorld, episodeId: string) {
  const history = await w.operator('GET', `/episodes/${episodeId}/qa/runs`);
  return history.body.items.filter((i: { kind: string }) => i.kind === 'run');
}

describe('QA when the object store is unreachable', () => {
  let s3: Awaited<ReturnType<typeof startS3rver>>;
  let system: System;
  let env: Record<string, string>;
  beforeAll(async () => {
    s3 = await startS3rver();
    const c = s3.connection;
    env = {
      BLOB_STORE: 's3',
      S3_ENDPOINT: c.endpoint,
      S3_BUCKET: c.bucket,
      S3_REGION: c.region,
      S3_ACCESS_KEY_ID: c.credentials.accessKeyId,
      S3_SECRET_ACCESS_KEY: c.credentials.secretAccessKey,
    };
    system = await System.create();
    await system.start(['production', 'transfer', 'gateway'], { env });
  }, 120_000);
  afterAll(async () => {
    await system?.shutdown();
    await s3?.stop();
  });

  it('answers a manual run 502, records nothing, and auto QA retries until the store is back', async () => {
    const w = await deviceWorld(system);
    const mcap = await writeRecording();
    const upload = await uploadRecording(w, mcap, { sidecar: sidecarOf(goodSidecar(mcap)) });
    expect(upload.status).toBe('acknowledged');
    await s3.stop({ keep: true }); // the store goes away before QA ever reads the recording
    await system.start(['qa'], { env });
    const manual = await waitFor(
      async () => {
        const res = await w.operator('POST', `/episodes/${upload.episode_id}/qa/runs`);
        // 404 until QA has projected the new episode; 409 while auto QA holds it for its (failing) attempt.
        return res.status !== 404 && res.status !== 409 && res;
      },
      { timeoutMs: 20_000 },
    );
    expect(manual.status).toBe(502);
    expect(manual.body).toMatchObject({ code: 'storage_error', status: 502 });
    expect(JSON.stringify(manual.body)).not.toMatch(/ECONNREFUSED|s3|aws/i);
    expect(await runsOf(w, upload.episode_id!)).toEqual([]);
    expect((await qaStatus(w, upload.episode_id!)).qa_status).toBe('pending_qa');
    // Auto QA tried during the outage: it claimed the episode, could not read it and gave the claim back.
    await waitFor(async () => (await releasedByAutoQa(upload.episode_id!)) > 0, {
      timeoutMs: 20_000,
      what: 'auto QA to attempt the check and release its claim while the store is down',
    });
    expect(system.processes.get('qa')!.lines.some((l) => l.msg === 'recording unreadable; QA claim released')).toBe(
      true,
    );

    s3 = await startS3rver({ port: s3.port, directory: s3.directory }); // back, with its objects
    await waitFor(async () => (await qaStatus(w, upload.episode_id!)).qa_status === 'approved', {
      timeoutMs: 60_000,
      what: 'auto QA to succeed once the store is back',
    });
    // Every delivery of the episode handled before counting (a duplicate check would land before this returns).
    await waitForConsumerDrained({
      jsm: system.infra.jsm,
      stream: system.infra.ns.stream('PRODUCTION'),
      durable: qaConsumers.autoCheck.durable,
      timeoutMs: 30_000,
    });
    const runs = await runsOf(w, upload.episode_id!);
    expect(runs.map((r: { run: { trigger: string; passed: boolean } }) => [r.run.trigger, r.run.passed])).toEqual([
      ['auto', true],
    ]);
  });

  /** How many times auto QA claimed the episode and gave it back unchecked (QA's status events, in its outbox). */
  async function releasedByAutoQa(episodeId: string): Promise<number> {
    const { rows } = await sql<{ n: number }>`
      select count(*)::int as n from outbox
      where event_type = ${qaEpisodeEvents.statusChanged.type} and payload->>'episode_id' = ${episodeId}
        and payload->>'cause' = 'auto' and payload->>'from' = 'qa_running' and payload->>'to' = 'pending_qa'`.execute(
      system.infra.database('qa').db,
    );
    return rows[0]!.n;
  }
});

describe('QA replicas', () => {
  let system: System;
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'ferry-qa-large-'));
    system = await System.create();
    await system.start(['production', 'transfer', 'gateway']);
  }, 120_000);
  afterAll(async () => {
    await system?.shutdown();
    await rm(dir, { recursive: true, force: true });
  });

  it('re-checks on another replica after the lease when one is killed mid-check, recording one finished run', async () => {
    const w = await deviceWorld(system);
    const file = path.join(dir, 'large.mcap');
    await writeLargeMcap(file, { bytes: 200 * MiB, compression: 'zstd' });
    const bytes = await readFile(file);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const taskId = w.taskIds[0]!;
    await w.device.api('POST', `/tasks/${taskId}/finish`, {});
    const uploader = w.uploader();
    const { body: u } = await uploader.open(taskId, [{ role: 'mcap', size_bytes: bytes.length, sha256 }]);
    await uploader.sendMissing(u.id, {
      mcap: (start, length) => createReadStream(file, { start, end: start + length - 1 }),
    });
    await uploader.complete(u.id);
    const upload = await uploader.waitForOutcome(u.id);
    expect(upload.status).toBe('acknowledged');

    // Replica A dies (SIGKILL) in the middle of reading the recording, holding the claim.
    const a = await system.startReplica('qa', { FERRY_FAULTS: 'qa.mid_check', QA_CLAIM_LEASE_MS: '2000' });
    // A fault that never fires must fail here, not hang to the test's timeout with a live replica.
    expect(await exitWithin(a, 45_000).finally(() => a.child.kill('SIGKILL'))).toMatchObject({ signal: 'SIGKILL' });
    expect(a.raw.join('\n')).toMatch(/fault injected at qa\.mid_check/);
    // No QA replica answers now: read the claim A left behind in QA's own table.
    const { rows } = await sql<{ qa_status: string; claimed: boolean }>`
      select qa_status, claim_id is not null as claimed from episodes where id = ${upload.episode_id}`.execute(
      system.infra.database('qa').db,
    );
    expect(rows).toEqual([{ qa_status: 'qa_running', claimed: true }]);
    // Replica B gets the message again and takes over the lapsed claim.
    const b = await system.startReplica('qa', { QA_CLAIM_LEASE_MS: '2000' });
    await waitFor(async () => (await qaStatus(w, upload.episode_id!)).qa_status === 'approved', {
      timeoutMs: 60_000,
      what: 'the other replica to check the episode',
    });
    // Every delivery handled (A's redelivered message included) before counting the finished runs.
    await waitForConsumerDrained({
      jsm: system.infra.jsm,
      stream: system.infra.ns.stream('PRODUCTION'),
      durable: qaConsumers.autoCheck.durable,
      timeoutMs: 30_000,
    });
    const runs = await runsOf(w, upload.episode_id!);
    expect(runs).toHaveLength(1);
    expect(runs[0].run).toMatchObject({ trigger: 'auto', passed: true, bytes_read: bytes.length });
    expect(b.lines.filter((l) => l.msg === 'qa run finished')).toHaveLength(1);
    await waitFor(
      async () => (await w.operator('GET', `/episodes/${upload.episode_id}`)).body.qa_status === 'approved',
      {
        timeoutMs: 15_000,
      },
    );
  });

  it('checks each new episode exactly once with two replicas consuming the same episodes', async () => {
    // Exactly these two replicas consume: any QA process an earlier test left is stopped first.
    for (const p of system.live().filter((x) => x.name === 'qa')) {
      p.child.kill('SIGTERM');
      await p.exited;
    }
    const replicas = [
      await system.startReplica('qa', { QA_CONCURRENCY: '1' }),
      await system.startReplica('qa', { QA_CONCURRENCY: '1' }),
    ];
    const w = await deviceWorld(system, { tasks: 8 });
    const mcap = await writeRecording();
    const sidecar = sidecarOf(goodSidecar(mcap));
    const uploads = await Promise.all(w.taskIds.map((_, index) => uploadRecording(w, mcap, { sidecar, index })));
    const episodeIds = uploads.map((u) => u.episode_id!);
    await waitFor(
      async () => (await Promise.all(episodeIds.map((id) => qaStatus(w, id)))).every((e) => e.qa_status === 'approved'),
      { timeoutMs: 60_000, what: 'every episode approved' },
    );
    // Every delivery handled (a redelivered duplicate would land before this returns), then count.
    await waitForConsumerDrained({
      jsm: system.infra.jsm,
      stream: system.infra.ns.stream('PRODUCTION'),
      durable: qaConsumers.autoCheck.durable,
      timeoutMs: 30_000,
    });
    for (const id of episodeIds) expect(await runsOf(w, id)).toHaveLength(1);
    // The race happened: both replicas checked some of them.
    const finished = replicas.map((r) => r.lines.filter((l) => l.msg === 'qa run finished').length);
    expect(finished.every((n) => n > 0)).toBe(true);
    expect(finished.reduce((a, b) => a + b, 0)).toBe(episodeIds.length);
  });
});

describe('QA while a long check runs', () => {
  let system: System;
  let dir: string;
  let w: DeviceWorld;
  let episodeId: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'ferry-qa-long-'));
    const file = path.join(dir, 'long.mcap');
    await writeLargeMcap(file, { bytes: 200 * MiB, compression: 'zstd' });
    system = await System.create();
    await system.start(['production', 'transfer', 'gateway']);
    await system.startReplica('qa', { QA_MANUAL_CONCURRENCY: '1' });
    w = await deviceWorld(system);
    const upload = await uploadRecording(w, await readFile(file));
    expect(upload.status).toBe('acknowledged');
    episodeId = upload.episode_id!;
    await waitFor(async () => (await qaStatus(w, episodeId)).qa_status === 'approved', {
      timeoutMs: 60_000,
      what: 'auto QA to approve the long recording',
    });
  }, 180_000);
  afterAll(async () => {
    await system?.shutdown();
    await rm(dir, { recursive: true, force: true });
  });

  /** A manual run, started and left running; resolves with its answer. */
  const startManualRun = () => w.operator('POST', `/episodes/${episodeId}/qa/runs`);
  /** QA's own table says a check holds the episode right now. */
  const checking = async () =>
    (
      await sql<{ held: boolean }>`select claim_id is not null as held from episodes where id = ${episodeId}`.execute(
        system.infra.database('qa').db,
      )
    ).rows[0]?.held === true;

  it('keeps the status a person sets while a check runs, and still records the check', async () => {
    // The episode is shared with the other tests of this block: only what this test adds is asserted.
    const before = (await w.operator('GET', `/episodes/${episodeId}/qa/runs`)).body.items;
    const manual = startManualRun();
    await waitFor(checking, { timeoutMs: 10_000, intervalMs: 10, what: 'the manual check to start' });
    const review = await w.operator('POST', `/episodes/${episodeId}/qa/review`, {
      decision: 'reject',
      note: 'the gripper slipped in this take',
    });
    expect(review.status).toBe(201);
    // The race happened: the person decided while the check held the episode.
    expect(review.body).toMatchObject({ from_status: 'qa_running', to_status: 'rejected' });
    const run = await manual;
    expect(run.status).toBe(201);
    expect(run.body).toMatchObject({ trigger: 'manual', passed: true, status_after: 'rejected' });
    expect((await qaStatus(w, episodeId)).qa_status).toBe('rejected');
    const history = await w.operator('GET', `/episodes/${episodeId}/qa/runs`);
    // Newest first: this test's run (it finished after the review), its review, then what was there before.
    expect(history.body.items).toHaveLength(before.length + 2);
    expect(history.body.items.slice(0, 2)).toMatchObject([
      { kind: 'run', run: { id: run.body.id } },
      { kind: 'review', review: { id: review.body.id } },
    ]);
    expect(history.body.items.slice(2)).toEqual(before);
    await waitFor(async () => (await w.operator('GET', `/episodes/${episodeId}`)).body.qa_status === 'rejected', {
      timeoutMs: 15_000,
      what: 'production’s read copy to show the person’s status',
    });
  });

  it('answers another manual run 503 with Retry-After while the replica’s manual slots are taken', async () => {
    const first = startManualRun();
    await waitFor(checking, { timeoutMs: 10_000, intervalMs: 10, what: 'the first manual check to start' });
    const second = await startManualRun();
    expect(await checking()).toBe(true); // the first was still running when the second was refused
    expect(second.status).toBe(503);
    expect(second.headers.get('retry-after')).toBe('5');
    expect(second.body).toMatchObject({ code: 'unavailable', status: 503 });
    expect((await first).status).toBe(201);
    // A slot is free again.
    expect((await startManualRun()).status).toBe(201);
  });
});
