import { HEADERS, productionConsumers, type QaStatus, type UploadedFile, uploadEvents } from '@ferry/contracts';
import { InboxConsumer, toNatsHeaders } from '@ferry/platform';
import { silentLogger, waitForConsumerDrained } from '@ferry/platform/testing';
import { sql } from 'kysely';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProductionDB } from '../database.js';
import { type ProductionFixture, productionFixture } from '../testing/production-fixture.js';

const file = (key: string): UploadedFile => ({ object_key: key, size_bytes: 2048, sha256: 'c'.repeat(64) });

describe('episodes from verified uploads', () => {
  let f: ProductionFixture;
  type World = Awaited<ReturnType<ProductionFixture['world']>>;

  beforeAll(async () => {
    f = await productionFixture();
    const { provisionTopology } = await import('@ferry/platform');
    await provisionTopology(f.infra.jsm, f.infra.ns);
  });
  afterAll(() => f.cleanup());

  const verified = (
    w: World,
    taskId: string,
    extra: Partial<{ upload_id: string; device_id: string; org: string }> = {},
  ) => ({
    upload_id: extra.upload_id ?? uuidv7(),
    organization_id: extra.org ?? w.actor.org,
    task_id: taskId,
    device_id: extra.device_id ?? w.device,
    files: { mcap: file(`u/${taskId}.mcap`), sidecar: file(`u/${taskId}.json`) },
    recording: { duration_sec: 30.5, message_count: 1200, topics: ['/camera', '/joints'] },
    verified_at: new Date().toISOString(),
  });

  async function oneTask(w: World, quantity = 1) {
    const { batch, tasks } = await f.tx((trx) =>
      f.batches.create(
        w.actor,
        {
          order_id: w.order.id,
          workstation_id: w.workstation.id,
          task_groups: [{ group: 'g', quantity }],
          metadata: {},
        },
        trx,
      ),
    );
    return { batch, tasks };
  }

  const episodesOf = async (taskId: string) =>
    (await sql<{ id: string }>`select id from episodes where task_id = ${taskId}`.execute(f.db)).rows;
  const eventsFor = async (type: string, key: string, value: string) =>
    (await f.outboxEvents(type)).filter((e) => JSON.stringify(e.payload).includes(`"${key}":"${value}"`));

  it('creates the episode, counts it on the batch, completes the task and records episode.created, in one transaction', async () => {
    const w = await f.world();
    const { batch, tasks } = await oneTask(w, 2);
    const upload = verified(w, tasks[0]!.id);
    const outcome = await f.tx((trx) => f.episodes.onUploadVerified(upload, trx));
    expect(outcome.kind).toBe('created');
    const episode = await f.episodes.get(w.actor, (outcome as { episode: { id: string } }).episode.id);
    expect(episode).toMatchObject({
      task_id: tasks[0]!.id,
      batch_id: batch.id,
      order_id: w.order.id,
      upload_id: upload.upload_id,
      device_id: w.device,
      qa_status: 'pending_qa',
      files: { mcap: upload.files.mcap, sidecar: upload.files.sidecar },
      recording: upload.recording,
    });
    expect(await f.tasks.get(w.actor, tasks[0]!.id)).toMatchObject({ status: 'completed', episode_id: episode.id });
    expect((await f.batches.get(w.actor, batch.id)).episode_count).toBe(1);
    expect(await eventsFor('production.evt.episode.created.v1', 'upload_id', upload.upload_id)).toHaveLength(1);
    expect((await f.orders.get(w.actor, w.order.id)).status).toBe('in_progress');
  });

  it('keeps the newer QA status when an older status change arrives after it', async () => {
    const w = await f.world();
    const { tasks } = await oneTask(w);
    const outcome = await f.tx((trx) => f.episodes.onUploadVerified(verified(w, tasks[0]!.id), trx));
    const episodeId = (outcome as { episode: { id: string } }).episode.id;
    const change = (from: QaStatus, to: QaStatus, changedAt: Date) => ({
      episode_id: episodeId,
      organization_id: w.actor.org,
      from,
      to,
      cause: 'auto' as const,
      run_id: null,
      changed_at: changedAt.toISOString(),
    });
    const claimedAt = new Date(Date.now() - 60_000);
    const finishedAt = new Date(claimedAt.getTime() + 30_000);
    // QA claimed it, then approved it; the approval is delivered first.
    await f.tx((trx) => f.episodes.onQaStatusChanged(change('qa_running', 'approved', finishedAt), trx));
    await f.tx((trx) => f.episodes.onQaStatusChanged(change('pending_qa', 'qa_running', claimedAt), trx));
    expect((await f.episodes.get(w.actor, episodeId)).qa_status).toBe('approved');
    const { rows } = await sql<{ qa_status_changed_at: Date }>`
      select qa_status_changed_at from episodes where id = ${episodeId}`.execute(f.db);
    expect(rows[0]!.qa_status_changed_at.toISOString()).toBe(finishedAt.toISOString());
    // A later change (a person's review) still applies.
    const reviewedAt = new Date(finishedAt.getTime() + 1_000);
    await f.tx((trx) => f.episodes.onQaStatusChanged(change('approved', 'rejected', reviewedAt), trx));
    expect((await f.episodes.get(w.actor, episodeId)).qa_status).toBe('rejected');
  });

  it('follows two QA status changes stamped with the same millisecond in either order of delivery', async () => {
    const w = await f.world();
    const { tasks } = await oneTask(w, 2);
    const at = new Date(Date.now() - 10_000).toISOString(); // a check quicker than the clock's resolution
    const change = (episodeId: string, from: QaStatus, to: QaStatus) => ({
      episode_id: episodeId,
      organization_id: w.actor.org,
      from,
      to,
      cause: 'auto' as const,
      run_id: null,
      changed_at: at,
    });
    const apply = (c: ReturnType<typeof change>) => f.tx((trx) => f.episodes.onQaStatusChanged(c, trx));
    for (const [i, order] of (['in order', 'reversed'] as const).entries()) {
      const outcome = await f.tx((trx) => f.episodes.onUploadVerified(verified(w, tasks[i]!.id), trx));
      const id = (outcome as { episode: { id: string } }).episode.id;
      const claimed = change(id, 'pending_qa', 'qa_running');
      const approved = change(id, 'qa_running', 'approved');
      for (const c of order === 'in order' ? [claimed, approved] : [approved, claimed]) await apply(c);
      expect((await f.episodes.get(w.actor, id)).qa_status, order).toBe('approved');
    }
  });

  it('rejects an upload for a cancelled task with a reason, creating nothing', async () => {
    const w = await f.world();
    const { batch, tasks } = await oneTask(w);
    await f.tx((trx) => f.batches.update(w.actor, batch.id, { status: 'cancelled' }, trx));
    const upload = verified(w, tasks[0]!.id);
    expect(await f.tx((trx) => f.episodes.onUploadVerified(upload, trx))).toEqual({
      kind: 'rejected',
      reason: 'task_cancelled',
    });
    expect(await episodesOf(tasks[0]!.id)).toEqual([]);
    const [rejected] = await eventsFor('production.evt.upload.rejected.v1', 'upload_id', upload.upload_id);
    expect(rejected!.payload).toMatchObject({ reason: 'task_cancelled', task_id: tasks[0]!.id });
    expect((await f.batches.get(w.actor, batch.id)).episode_count).toBe(0);
  });

  it('rejects an upload from a device that does not own the task, creating nothing', async () => {
    const w = await f.world();
    const { tasks } = await oneTask(w);
    const upload = verified(w, tasks[0]!.id, { device_id: 'stranger' });
    expect(await f.tx((trx) => f.episodes.onUploadVerified(upload, trx))).toEqual({
      kind: 'rejected',
      reason: 'not_owner',
    });
    expect(await episodesOf(tasks[0]!.id)).toEqual([]);
    expect((await f.tasks.get(w.actor, tasks[0]!.id)).status).toBe('pending');
    expect(await eventsFor('production.evt.upload.rejected.v1', 'upload_id', upload.upload_id)).toHaveLength(1);
  });

  it('rejects uploads for unknown tasks, other organizations and tasks that already have an episode', async () => {
    const w = await f.world();
    const { tasks } = await oneTask(w);
    expect(await f.tx((trx) => f.episodes.onUploadVerified(verified(w, uuidv7()), trx))).toMatchObject({
      reason: 'task_not_found',
    });
    expect(
      await f.tx((trx) => f.episodes.onUploadVerified(verified(w, tasks[0]!.id, { org: uuidv7() }), trx)),
    ).toMatchObject({
      reason: 'organization_mismatch',
    });
    const first = verified(w, tasks[0]!.id);
    await f.tx((trx) => f.episodes.onUploadVerified(first, trx));
    expect(await f.tx((trx) => f.episodes.onUploadVerified(verified(w, tasks[0]!.id), trx))).toMatchObject({
      reason: 'task_has_episode',
    });
    // The very same upload again is a quiet duplicate.
    expect(await f.tx((trx) => f.episodes.onUploadVerified(first, trx))).toEqual({ kind: 'duplicate' });
    expect(await episodesOf(tasks[0]!.id)).toHaveLength(1);
  });

  it('completing the order’s target finalizes its open batches: runnable tasks cancelled, uploads kept', async () => {
    const w = await f.world({ target: 2 });
    const a = await oneTask(w, 1);
    const other = await f.tx((trx) =>
      f.workstations.create(
        w.actor,
        { device_id: `d2-${uuidv7().slice(-6)}`, collector_operator_id: `o2-${uuidv7().slice(-6)}`, metadata: {} },
        trx,
      ),
    );
    const { batch: b, tasks: bTasks } = await f.tx((trx) =>
      f.batches.create(
        w.actor,
        { order_id: w.order.id, workstation_id: other.id, task_groups: [{ group: 'g', quantity: 1 }], metadata: {} },
        trx,
      ),
    );
    // Target 2: one task in each batch. b's task is uploading when a's completes; b's completion ends the order.
    await f.tx((trx) =>
      f.tasks.deviceAction(w.actor, { id: bTasks[0]!.id, action: 'finish', device_id: other.device_id }, trx),
    );
    await f.tx((trx) => f.episodes.onUploadVerified(verified(w, a.tasks[0]!.id), trx));
    expect((await f.orders.get(w.actor, w.order.id)).status).toBe('in_progress');
    await f.tx((trx) => f.episodes.onUploadVerified(verified(w, bTasks[0]!.id, { device_id: other.device_id }), trx));
    const order = await f.orders.get(w.actor, w.order.id);
    expect(order).toMatchObject({ status: 'completed', completed_count: 2 });
    expect((await f.batches.get(w.actor, b.id)).status).toBe('completed');
  });

  it('on completion cancels the runnable tasks of other open batches and leaves their uploads to finish', async () => {
    const w = await f.world({ target: 3 });
    const first = await oneTask(w, 1);
    const ws2 = await f.tx((trx) =>
      f.workstations.create(
        w.actor,
        { device_id: `d3-${uuidv7().slice(-6)}`, collector_operator_id: `o3-${uuidv7().slice(-6)}`, metadata: {} },
        trx,
      ),
    );
    const { batch: open, tasks: openTasks } = await f.tx((trx) =>
      f.batches.create(
        w.actor,
        { order_id: w.order.id, workstation_id: ws2.id, task_groups: [{ group: 'g', quantity: 2 }], metadata: {} },
        trx,
      ),
    );
    await f.tx((trx) =>
      f.tasks.deviceAction(w.actor, { id: openTasks[0]!.id, action: 'finish', device_id: ws2.device_id }, trx),
    );
    // Lower the target to 1: the next completion completes the order.
    await f.tx((trx) => f.orders.update(w.actor, w.order.id, { target_count: 1 }, trx));
    await f.tx((trx) => f.episodes.onUploadVerified(verified(w, first.tasks[0]!.id), trx));
    expect((await f.orders.get(w.actor, w.order.id)).status).toBe('completed');
    const finalized = await f.batches.get(w.actor, open.id);
    expect(finalized).toMatchObject({ status: 'completed', task_counts: { uploading: 1, cancelled: 1 } });
    const changes = (await f.outboxEvents('production.evt.task.status_changed.v1')).filter(
      (e) => e.payload.task.id === openTasks[1]!.id,
    );
    expect(changes.map((e) => [e.payload.to, e.payload.cause])).toEqual([['cancelled', 'order_completed']]);
    // The upload in flight still lands.
    expect(
      await f.tx((trx) =>
        f.episodes.onUploadVerified(verified(w, openTasks[0]!.id, { device_id: ws2.device_id }), trx),
      ),
    ).toMatchObject({
      kind: 'created',
    });
  });

  it('refuses to delete an order that batches, tasks and episodes refer to, naming them, changing nothing', async () => {
    const w = await f.world();
    const { batch, tasks } = await oneTask(w);
    await f.tx((trx) => f.episodes.onUploadVerified(verified(w, tasks[0]!.id), trx));
    const err = await f.tx((trx) => f.orders.delete(w.actor, w.order.id, trx)).catch((e) => e);
    expect(err).toMatchObject({
      code: 'referenced',
      details: {
        referenced_by: [{ type: 'batch', id: batch.id }],
        reference_counts: { batches: 1, tasks: 1, episodes: 1 },
      },
    });
    expect(await f.orders.get(w.actor, w.order.id)).toMatchObject({ id: w.order.id });
  });

  describe('through the inbox consumer', () => {
    function consumer(db: typeof f.db) {
      return new InboxConsumer({
        def: productionConsumers.uploadVerified,
        db,
        js: f.infra.js,
        ns: f.infra.ns,
        logger: silentLogger(),
        retryScheduleMs: [100],
        handler: async (payload, ctx) => {
          await f.episodes.onUploadVerified(payload as never, ctx.trx as never);
        },
      });
    }

    async function publish(payload: unknown, eventId: string, msgId = eventId) {
      await f.infra.js.publish(f.infra.ns.subject(uploadEvents.verified.type), JSON.stringify(payload), {
        msgID: msgId,
        headers: toNatsHeaders({ [HEADERS.eventId]: eventId, [HEADERS.eventType]: uploadEvents.verified.type }),
      });
    }

    /**
     * Two replicas, each with its own pool, on the one durable consumer; runs `publishAll`, then
     * drains. The first delivery waits at the door (up to 5 s) until the other replica holds one
     * too, so the two race for the task rather than take turns. Resolves true when they did: both
     * replicas held a delivery at the same time.
     */
    async function withTwoReplicas(publishAll: () => Promise<unknown>): Promise<boolean> {
      const arrived = new Set<number>();
      let waiting = 0;
      let raced = false;
      let open!: () => void;
      const door = new Promise<void>((resolve) => {
        open = resolve;
      });
      const replicas = [0, 1].map((i) => {
        const c = consumer(f.infra.database<ProductionDB>('production', { max: 4 }).db);
        const handle = c.handle.bind(c);
        c.handle = async (msg) => {
          const first = !arrived.has(i);
          arrived.add(i);
          // The second replica's first delivery: the race happened if the other one is still waiting.
          if (first && arrived.size === 2) {
            raced = waiting > 0;
            open();
          }
          waiting++;
          let timer: NodeJS.Timeout | undefined;
          await Promise.race([door, new Promise((resolve) => (timer = setTimeout(resolve, 5_000)))]);
          clearTimeout(timer);
          waiting--;
          return handle(msg);
        };
        return c;
      });
      await Promise.all(replicas.map((r) => r.start()));
      try {
        await publishAll();
        await drained();
      } finally {
        await Promise.all(replicas.map((r) => r.stop()));
      }
      return raced;
    }

    async function drained() {
      await waitForConsumerDrained({
        jsm: f.infra.jsm,
        stream: f.infra.ns.stream('TRANSFER'),
        durable: productionConsumers.uploadVerified.durable,
      });
    }

    it('makes one episode, one count and one event when the same event arrives twice and two replicas race for it', async () => {
      const w = await f.world();
      const { batch, tasks } = await oneTask(w);
      const upload = verified(w, tasks[0]!.id);
      // Two replicas, each with its own connection pool, on the one durable consumer.
      const raced = await withTwoReplicas(async () => {
        // The event id is the upload id; the copies differ in Nats-Msg-Id (a republish after the dedup window).
        await Promise.all([
          publish(upload, upload.upload_id),
          publish(upload, upload.upload_id, `${upload.upload_id}-again`),
          publish(upload, upload.upload_id, `${upload.upload_id}-third`),
        ]);
      });
      expect(raced).toBe(true); // both replicas held a copy at the same time
      expect(await episodesOf(tasks[0]!.id)).toHaveLength(1);
      expect((await f.batches.get(w.actor, batch.id)).episode_count).toBe(1);
      expect(await eventsFor('production.evt.episode.created.v1', 'upload_id', upload.upload_id)).toHaveLength(1);
      const completions = (await f.outboxEvents('production.evt.task.status_changed.v1')).filter(
        (e) => e.payload.task.id === tasks[0]!.id && e.payload.to === 'completed',
      );
      expect(completions).toHaveLength(1);
    });

    it('makes one episode when two different events for the same upload race on two replicas', async () => {
      const w = await f.world();
      const { tasks } = await oneTask(w);
      const upload = verified(w, tasks[0]!.id);
      const raced = await withTwoReplicas(async () => {
        await Promise.all([publish(upload, uuidv7()), publish(upload, uuidv7())]);
      });
      expect(raced).toBe(true); // each replica held one of the two events at the same time
      expect(await episodesOf(tasks[0]!.id)).toHaveLength(1);
      expect(await eventsFor('production.evt.episode.created.v1', 'upload_id', upload.upload_id)).toHaveLength(1);
      expect(await eventsFor('production.evt.upload.rejected.v1', 'upload_id', upload.upload_id)).toHaveLength(0);
    });
  });
});
