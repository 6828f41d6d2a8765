import { deviceEvents, type Episode, type EventDefinition, episodeEvents } from '@ferry/contracts';
import { waitFor } from '@ferry/platform/testing';
import { type Kysely, sql } from 'kysely';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deviceRecord, episodeRecord } from '../../services/qa/src/testing/records.js';
import { System } from '../support/system.js';

/**
 * QA's projection of production's episodes and transfer's devices, fed by events that cross streams
 * and consumers: whatever order they arrive in, the newest version wins and nothing is dropped.
 * Events are published straight onto the streams (as production and transfer do) so the order is ours.
 */
describe('QA projection of episodes and devices', () => {
  let system: System;
  let db: Kysely<any>;
  const org = uuidv7();

  beforeAll(async () => {
    system = await System.create();
    await system.start(['qa']);
    db = system.infra.database('qa').db;
  }, 120_000);
  afterAll(() => system?.shutdown());

  /** Publishes one event as its service's outbox relay would; answers its event id. */
  const publish = async (def: EventDefinition, payload: unknown) => (await system.infra.publishEvent(def, payload)).id;

  /** The event was handled by `durable`: its inbox row commits with the effect. */
  async function handled(durable: string, eventId: string) {
    await waitFor(
      async () =>
        (
          await sql<{ n: number }>`
            select count(*)::int as n from inbox where consumer = ${durable} and message_id = ${eventId}`.execute(db)
        ).rows[0]!.n === 1,
      { timeoutMs: 30_000, intervalMs: 50, what: `${durable} to handle ${eventId}` },
    );
  }

  function episode(overrides: Partial<Episode> = {}): Episode {
    const id = uuidv7();
    const at = new Date(Date.now() - 60_000).toISOString();
    return episodeRecord({
      id,
      organization_id: org,
      device_id: 'arm-projection',
      // No such object: auto QA fails it quickly (transport), which this file does not look at.
      files: {
        mcap: { object_key: `${org}/missing/${id}.mcap`, size_bytes: 10, sha256: 'a'.repeat(64) },
        sidecar: null,
      },
      created_at: at,
      updated_at: at,
      ...overrides,
    });
  }

  const labelsOf = async (id: string) =>
    (await sql<{ labels: string[] }>`select labels from episodes where id = ${id}`.execute(db)).rows[0]?.labels;

  it('applies an episode.updated that overtook episode.created once the episode is projected', async () => {
    const e = episode();
    const later = new Date(Date.parse(e.created_at) + 1_000).toISOString();
    const update = await publish(episodeEvents.updated, {
      episode: { ...e, labels: ['recalled_batch'], updated_at: later },
      changed: ['labels'],
    });
    // The update is refused (not projected yet) and waits for a redelivery.
    const qa = system.processes.get('qa')!;
    await waitFor(() => qa.lines.some((l) => l.event_id === update && l.msg === 'event handler failed; will retry'), {
      timeoutMs: 10_000,
      what: 'the early update to be held back',
    });
    expect(await labelsOf(e.id)).toBeUndefined();
    await handled('qa__episodes', await publish(episodeEvents.created, { episode: e }));
    await handled('qa__episode-updated', update);
    expect(await labelsOf(e.id)).toEqual(['recalled_batch']);
    // Nothing went to the dead-letter stream on the way.
    const dlq = await system.infra.jsm.streams.info(system.infra.ns.stream('DLQ'));
    expect(dlq.state.messages).toBe(0);
  });

  it('keeps the newest labels when an older episode.updated arrives after a newer one', async () => {
    const e = episode();
    await handled('qa__episodes', await publish(episodeEvents.created, { episode: e }));
    const t = (s: number) => new Date(Date.parse(e.created_at) + s * 1_000).toISOString();
    const newer = await publish(episodeEvents.updated, {
      episode: { ...e, labels: ['recalled_batch', 'reshoot'], updated_at: t(2) },
      changed: ['labels'],
    });
    const older = await publish(episodeEvents.updated, {
      episode: { ...e, labels: ['recalled_batch'], updated_at: t(1) },
      changed: ['labels'],
    });
    await handled('qa__episode-updated', older);
    await handled('qa__episode-updated', newer);
    expect(await labelsOf(e.id)).toEqual(['recalled_batch', 'reshoot']);
  });

  it('never lets an older device event put back what a newer one changed, and applies a later deletion', async () => {
    const deviceId = `arm-${uuidv7().slice(-8)}`;
    const base = Date.now() - 60_000;
    const device = (robotType: string, s: number) =>
      deviceRecord({
        organization_id: org,
        device_id: deviceId,
        robot_type: robotType,
        expected_topics: [`/${robotType}`],
        created_at: new Date(base).toISOString(),
        updated_at: new Date(base + s * 1_000).toISOString(),
      });
    const row = async () =>
      (
        await sql<{ robot_type: string; expected_topics: string[]; deleted: boolean }>`
          select robot_type, expected_topics, deleted from devices where device_id = ${deviceId}`.execute(db)
      ).rows[0];
    // The update (newer) arrives before the registration (older), as after a redelivery.
    const newer = await publish(deviceEvents.updated, { device: device('arm-v2', 2), changed: ['robot_type'] });
    await handled('qa__devices', await publish(deviceEvents.registered, { device: device('arm-v1', 0) }));
    await handled('qa__devices', newer);
    expect(await row()).toEqual({ robot_type: 'arm-v2', expected_topics: ['/arm-v2'], deleted: false });
    const deleted = await publish(deviceEvents.deleted, {
      device: device('arm-v2', 2),
      deleted_at: new Date(base + 3_000).toISOString(),
      tokens_revoked: 0,
    });
    await handled('qa__devices', deleted);
    expect(await row()).toMatchObject({ robot_type: 'arm-v2', deleted: true });
  });
});
