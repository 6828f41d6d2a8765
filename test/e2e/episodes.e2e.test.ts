import { HEADERS, uploadEvents } from '@ferry/contracts';
import { streamMessages, waitFor, waitForConsumerDrained, waitForEventsSettled } from '@ferry/platform/testing';
import type { Kysely } from 'kysely';
import { v7 as uuidv7 } from 'uuid';
import { beforeAll, describe, expect, it } from 'vitest';
import { exitWithin, type ServiceProcess, type System, useSystem } from '../support/system.js';

/**
 * A verified upload published on TRANSFER (as the transfer service will) becomes an episode in the
 * production process, visible over HTTP, with episode.created on PRODUCTION — also when production is
 * killed between commit and ack and the event is redelivered.
 */
describe('verified uploads to episodes, end to end', () => {
  const org = uuidv7();
  const sys = useSystem(['production', 'transfer', 'qa', 'gateway'], org);
  const { api } = sys;
  let system: System;
  let productionDb: Kysely<any>;
  beforeAll(() => {
    system = sys.get();
    productionDb = system.infra.database('production', { max: 1 }).db;
  });

  /** Production's outbox drained and PRODUCTION's last sequence stable: no duplicate can still arrive. */
  const eventsSettled = () =>
    waitForEventsSettled({
      jsm: system.infra.jsm,
      stream: system.infra.ns.stream('PRODUCTION'),
      outboxes: [productionDb],
    });

  async function task() {
    const scene = (await api('POST', '/scenes', { name: `s-${uuidv7()}` })).body;
    const order = (await api('POST', '/orders', { scene_id: scene.id, name: `o-${uuidv7()}`, target_count: 5 })).body;
    const device = `dev-${uuidv7().slice(-8)}`;
    const ws = (await api('POST', '/workstations', { device_id: device, collector_operator_id: `op-${device}` })).body;
    const created = await api('POST', `/orders/${order.id}/tasks`, { workstation_id: ws.id, external_id: 'rec-1' });
    await api('POST', `/tasks/${created.body.id}/start`, { device_id: device });
    await api('POST', `/tasks/${created.body.id}/finish`, { device_id: device });
    return { order, task: created.body, device };
  }

  async function publishVerified(taskId: string, device: string) {
    const uploadId = uuidv7();
    const payload = {
      upload_id: uploadId,
      organization_id: org,
      task_id: taskId,
      device_id: device,
      files: {
        mcap: { object_key: `${org}/${device}/${uploadId}/recording.mcap`, size_bytes: 4096, sha256: 'd'.repeat(64) },
      },
      recording: { duration_sec: 8, message_count: 400, topics: ['/cam'] },
      verified_at: new Date().toISOString(),
    };
    // Dedup key = upload id, as transfer's relay publishes it.
    await system.infra.publishEvent(uploadEvents.verified, payload, { id: uploadId, correlationId: `e2e-${uploadId}` });
    return uploadId;
  }

  const episodeEvents = async (uploadId: string) =>
    (await streamMessages(system.infra.jsm, system.infra.ns.stream('PRODUCTION'))).filter(
      (m) =>
        m.subject === system.infra.ns.subject('production.evt.episode.created.v1') &&
        m.json<{ episode: { upload_id: string } }>().episode.upload_id === uploadId,
    );

  it('creates the episode, completes the task and publishes episode.created once', async () => {
    const { task: t, device, order } = await task();
    const uploadId = await publishVerified(t.id, device);
    const completed = await waitFor(async () => {
      const r = await api('GET', `/tasks/${t.id}`);
      return r.body.status === 'completed' && r.body;
    });
    const episode = (await api('GET', `/episodes/${completed.episode_id}`)).body;
    expect(episode).toMatchObject({ task_id: t.id, upload_id: uploadId, order_id: order.id });
    expect((await api('GET', `/episodes?order_id=${order.id}`)).body.items).toHaveLength(1);
    await eventsSettled();
    const created = await episodeEvents(uploadId);
    expect(created).toHaveLength(1);
    expect(created[0]!.header.get(HEADERS.causationId)).toBe(uploadId);
    // Born waiting for QA (production's copy of the QA status may have moved on since: QA runs in this system and
    // checks the episode at once).
    expect(created[0]!.json<{ episode: { id: string; qa_status: string } }>().episode).toMatchObject({
      id: episode.id,
      qa_status: 'pending_qa',
    });
  });

  it('creates one episode when production dies between commit and ack and the event comes back', async () => {
    await system.stop('production');
    let faulty: ServiceProcess | undefined;
    try {
      // Scoped to upload-verified: production also consumes QA statuses, and QA (running here) may still be
      // publishing them for the first test's episode; an unscoped fault would kill whichever commits first.
      await system.start(['production'], {
        env: { FERRY_FAULTS: 'consumer.after_commit@production__upload-verified' },
      });
      faulty = system.processes.get('production')!;
      const { task: t, device } = await task();
      const uploadId = await publishVerified(t.id, device);
      expect(await exitWithin(faulty)).toMatchObject({ signal: 'SIGKILL' });
      expect(faulty.raw.join('\n')).toMatch(/fault injected at consumer\.after_commit@production__upload-verified/);
      await system.start(['production']); // redelivered after ack_wait; the inbox says duplicate
      const restarted = system.processes.get('production')!;
      // The kill hit upload-verified between its commit and its ack: the message comes back and the
      // inbox row committed before the kill makes it a duplicate.
      await waitFor(
        () =>
          restarted.lines.some(
            (l) =>
              l.consumer === 'production__upload-verified' &&
              l.event_id === uploadId &&
              l.msg === 'event handled' &&
              l.outcome === 'duplicate' &&
              Number(l.delivery) >= 2,
          ),
        { timeoutMs: 45_000, what: 'the redelivered upload.verified to be handled as a duplicate' },
      );
      await waitForConsumerDrained({
        jsm: system.infra.jsm,
        stream: system.infra.ns.stream('TRANSFER'),
        durable: 'production__upload-verified',
        timeoutMs: 45_000,
        what: 'the redelivery to be acked',
      });
      const episodes = (await api('GET', `/episodes?task_id=${t.id}`)).body.items;
      expect(episodes).toHaveLength(1);
      expect(episodes[0].upload_id).toBe(uploadId);
      await eventsSettled();
      expect(await episodeEvents(uploadId)).toHaveLength(1);
      const batch = (await api('GET', `/batches/${t.batch_id}`)).body;
      expect(batch.episode_count).toBe(1);
    } finally {
      // Leave one healthy production, whatever happened above (a fault that never fired included).
      if (faulty && system.processes.get('production') === faulty) await system.stop('production', 'SIGKILL');
      if (!system.processes.has('production')) await system.start(['production']);
    }
  }, 120_000);
});
