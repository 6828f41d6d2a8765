import type { UploadedFile } from '@ferry/contracts';
import { sql } from 'kysely';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ProductionFixture, productionFixture } from '../testing/production-fixture.js';

const file = (key: string): UploadedFile => ({ object_key: key, size_bytes: 10, sha256: 'b'.repeat(64) });

describe('BatchService', () => {
  let f: ProductionFixture;
  beforeAll(async () => {
    f = await productionFixture();
  });
  afterAll(() => f.cleanup());

  type World = Awaited<ReturnType<ProductionFixture['world']>>;
  const createBatch = (w: World, groups: { group: string; quantity: number }[], workstationId = w.workstation.id) =>
    f.tx((trx) =>
      f.batches.create(
        w.actor,
        { order_id: w.order.id, workstation_id: workstationId, task_groups: groups, metadata: {} },
        trx,
      ),
    );

  async function record(w: World, taskId: string) {
    return f.tx((trx) =>
      f.episodes.onUploadVerified(
        {
          upload_id: uuidv7(),
          organization_id: w.actor.org,
          task_id: taskId,
          device_id: w.device,
          files: { mcap: file(`e/${taskId}.mcap`) },
          recording: { duration_sec: 12 },
          verified_at: new Date().toISOString(),
        },
        trx,
      ),
    );
  }

  it('creates the batch with its task groups in one transaction', async () => {
    const w = await f.world({ target: 10 });
    const { batch, tasks } = await createBatch(w, [
      { group: 'left', quantity: 2 },
      { group: 'right', quantity: 3 },
    ]);
    expect(batch).toMatchObject({ status: 'pending', episode_count: 0, task_counts: { total: 5, pending: 5 } });
    expect(tasks.map((t) => t.group).sort()).toEqual(['left', 'left', 'right', 'right', 'right']);
    expect((await f.orders.get(w.actor, w.order.id)).task_count).toBe(5);
  });

  it('never allocates past the target when 20 batch creations race', async () => {
    const w = await f.world({ target: 25 });
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, () => createBatch(w, [{ group: 'g', quantity: 3 }])),
    );
    const ok = results.filter((r) => r.status === 'fulfilled');
    expect(ok).toHaveLength(8); // 8 × 3 = 24 ≤ 25 < 27
    for (const r of results) {
      if (r.status === 'rejected') expect(r.reason).toMatchObject({ code: 'quota_exceeded' });
    }
    const { rows } = await sql<{
      n: number;
    }>`select count(*)::int as n from tasks where order_id = ${w.order.id} and deleted_at is null`.execute(f.db);
    expect(rows[0]!.n).toBe(24);
  });

  it('refuses a batch on a completed order with 409, and on an unbound workstation with 422', async () => {
    const w = await f.world({ target: 1 });
    const { tasks } = await createBatch(w, [{ group: 'g', quantity: 1 }]);
    await record(w, tasks[0]!.id);
    expect((await f.orders.get(w.actor, w.order.id)).status).toBe('completed');
    await expect(createBatch(w, [{ group: 'g', quantity: 1 }])).rejects.toMatchObject({
      code: 'invalid_state',
      details: { current_status: 'completed' },
    });

    const v = await f.world();
    await f.tx((trx) => f.workstations.unbind(v.actor, v.workstation.id, trx));
    await expect(createBatch(v, [{ group: 'g', quantity: 1 }])).rejects.toMatchObject({ code: 'reference_not_found' });
  });

  it('advances pending → active → completed from task outcomes, counting episodes', async () => {
    const w = await f.world({ target: 10 });
    const { batch, tasks } = await createBatch(w, [{ group: 'g', quantity: 2 }]);
    await record(w, tasks[0]!.id);
    expect(await f.batches.get(w.actor, batch.id)).toMatchObject({
      status: 'active',
      episode_count: 1,
      task_counts: { completed: 1, pending: 1 },
    });
    await record(w, tasks[1]!.id);
    const done = await f.batches.get(w.actor, batch.id);
    expect(done).toMatchObject({ status: 'completed', episode_count: 2 });
    expect(done.ended_at).not.toBeNull();
    const order = await f.orders.get(w.actor, w.order.id);
    expect(order).toMatchObject({ status: 'in_progress', completed_count: 2 });
  });

  it('cancel cancels runnable tasks and keeps an upload in flight', async () => {
    const w = await f.world();
    const { batch, tasks } = await createBatch(w, [{ group: 'g', quantity: 3 }]);
    await f.tx((trx) =>
      f.tasks.deviceAction(w.actor, { id: tasks[0]!.id, action: 'finish', device_id: w.device }, trx),
    );
    await f.tx((trx) => f.tasks.deviceAction(w.actor, { id: tasks[1]!.id, action: 'start', device_id: w.device }, trx));
    const cancelled = await f.tx((trx) => f.batches.update(w.actor, batch.id, { status: 'cancelled' }, trx));
    expect(cancelled).toMatchObject({ status: 'cancelled', task_counts: { uploading: 1, cancelled: 2 } });
    // The upload still completes, and a late start on a cancelled task does not revive it.
    expect(await record(w, tasks[0]!.id)).toMatchObject({ kind: 'created' });
    await expect(
      f.tx((trx) => f.tasks.deviceAction(w.actor, { id: tasks[1]!.id, action: 'start', device_id: w.device }, trx)),
    ).rejects.toMatchObject({ code: 'invalid_state' });
    await expect(
      f.tx((trx) => f.batches.update(w.actor, batch.id, { status: 'cancelled' }, trx)),
    ).resolves.toMatchObject({
      status: 'cancelled',
    });
  });

  it('recall labels the recorded episodes recalled_batch once and cancels what is left', async () => {
    const w = await f.world();
    const { batch, tasks } = await createBatch(w, [{ group: 'g', quantity: 2 }]);
    const recorded = await record(w, tasks[0]!.id);
    const recalled = await f.tx((trx) => f.batches.recall(w.actor, batch.id, trx));
    expect(recalled).toMatchObject({ status: 'recalled', task_counts: { completed: 1, cancelled: 1 } });
    const episode = await f.episodes.get(w.actor, (recorded as { episode: { id: string } }).episode.id);
    expect(episode.labels).toEqual(['recalled_batch']);
    await expect(f.tx((trx) => f.batches.recall(w.actor, batch.id, trx))).rejects.toMatchObject({
      code: 'invalid_transition',
    });
    expect(
      (await f.episodes.list(w.actor, { limit: 10, label: 'recalled_batch', batch_id: batch.id })).items,
    ).toHaveLength(1);
  });

  it('adjusts group sizes declaratively, never below the tasks that already started', async () => {
    const w = await f.world({ target: 20 });
    const { batch, tasks } = await createBatch(w, [
      { group: 'a', quantity: 3 },
      { group: 'b', quantity: 1 },
    ]);
    const a = tasks.filter((t) => t.group === 'a');
    await f.tx((trx) => f.tasks.deviceAction(w.actor, { id: a[0]!.id, action: 'start', device_id: w.device }, trx));
    const result = await f.tx((trx) =>
      f.batches.adjust(
        w.actor,
        batch.id,
        [
          { group: 'a', quantity: 1 },
          { group: 'b', quantity: 4 },
          { group: 'c', quantity: 2 },
        ],
        trx,
      ),
    );
    expect(result.deleted_task_ids).toHaveLength(2);
    expect(result.deleted_task_ids).not.toContain(a[0]!.id);
    expect(result.created.map((t) => t.group).sort()).toEqual(['b', 'b', 'b', 'c', 'c']);
    expect(result.batch.task_counts.total).toBe(1 + 4 + 2);
    const err = await f
      .tx((trx) => f.batches.adjust(w.actor, batch.id, [{ group: 'a', quantity: 0 }], trx))
      .catch((e) => e);
    expect(err).toMatchObject({ code: 'invalid_state', details: { group: 'a', locked: 1, requested: 0 } });
    await expect(
      f.tx((trx) => f.batches.adjust(w.actor, batch.id, [{ group: 'c', quantity: 100 }], trx)),
    ).rejects.toMatchObject({
      code: 'quota_exceeded',
    });
  });

  describe('order automation', () => {
    it('refuses a target below the completed count, and completes when the target is lowered to it', async () => {
      const w = await f.world({ target: 5 });
      const { batch, tasks } = await createBatch(w, [{ group: 'g', quantity: 3 }]);
      await record(w, tasks[0]!.id);
      await record(w, tasks[1]!.id);
      await expect(f.tx((trx) => f.orders.update(w.actor, w.order.id, { target_count: 1 }, trx))).rejects.toMatchObject(
        {
          code: 'invalid_state',
          details: { completed_count: 2 },
        },
      );
      const done = await f.tx((trx) => f.orders.update(w.actor, w.order.id, { target_count: 2 }, trx));
      expect(done).toMatchObject({ status: 'completed', completed_count: 2 });
      expect(await f.batches.get(w.actor, batch.id)).toMatchObject({
        status: 'completed',
        task_counts: { cancelled: 1 },
      });
    });

    it('keeps a paused order paused at its target and completes it when resumed', async () => {
      const w = await f.world({ target: 1 });
      const { tasks } = await createBatch(w, [{ group: 'g', quantity: 1 }]);
      await f.tx((trx) =>
        f.tasks.deviceAction(w.actor, { id: tasks[0]!.id, action: 'finish', device_id: w.device }, trx),
      );
      await f.tx((trx) => f.orders.update(w.actor, w.order.id, { status: 'paused' }, trx));
      await record(w, tasks[0]!.id);
      expect(await f.orders.get(w.actor, w.order.id)).toMatchObject({ status: 'paused', completed_count: 1 });
      const resumed = await f.tx((trx) => f.orders.update(w.actor, w.order.id, { status: 'in_progress' }, trx));
      expect(resumed.status).toBe('completed');
    });
  });

  describe('delete', () => {
    it('removes a pending batch with its tasks', async () => {
      const w = await f.world();
      const { batch } = await createBatch(w, [{ group: 'g', quantity: 2 }]);
      const result = await f.tx((trx) => f.batches.delete(w.actor, batch.id, trx));
      expect(result).toEqual({ batch_deleted: true, tasks_removed: 2, completed_tasks: 0, batch: null });
      await expect(f.batches.get(w.actor, batch.id)).rejects.toMatchObject({ code: 'not_found' });
      expect((await f.orders.get(w.actor, w.order.id)).task_count).toBe(0);
    });

    it('keeps a cancelled batch that has recordings, removing only the unfinished tasks', async () => {
      const w = await f.world();
      const { batch, tasks } = await createBatch(w, [{ group: 'g', quantity: 3 }]);
      await record(w, tasks[0]!.id);
      await f.tx((trx) => f.batches.update(w.actor, batch.id, { status: 'cancelled' }, trx));
      const result = await f.tx((trx) => f.batches.delete(w.actor, batch.id, trx));
      expect(result).toMatchObject({
        batch_deleted: false,
        tasks_removed: 2,
        completed_tasks: 1,
        batch: { status: 'cancelled' },
      });
    });

    it('is refused for an active batch and while an upload is in flight', async () => {
      const w = await f.world();
      const { batch, tasks } = await createBatch(w, [{ group: 'g', quantity: 2 }]);
      await f.tx((trx) =>
        f.tasks.deviceAction(w.actor, { id: tasks[0]!.id, action: 'finish', device_id: w.device }, trx),
      );
      await expect(f.tx((trx) => f.batches.delete(w.actor, batch.id, trx))).rejects.toMatchObject({
        code: 'invalid_state',
      });
      await record(w, tasks[0]!.id); // batch now active
      await expect(f.tx((trx) => f.batches.delete(w.actor, batch.id, trx))).rejects.toMatchObject({
        code: 'invalid_transition',
      });
    });
  });
});

describe('WorkstationService', () => {
  let f: ProductionFixture;
  beforeAll(async () => {
    f = await productionFixture();
  });
  afterAll(() => f.cleanup());

  it('keeps a device and a collector in at most one current binding each', async () => {
    const w = await f.world();
    await expect(
      f.tx((trx) =>
        f.workstations.create(
          w.actor,
          { device_id: w.device, collector_operator_id: 'someone-else', metadata: {} },
          trx,
        ),
      ),
    ).rejects.toMatchObject({ code: 'binding_taken', details: { field: 'device_id' } });
    await expect(
      f.tx((trx) =>
        f.workstations.create(
          w.actor,
          { device_id: 'other-dev', collector_operator_id: w.workstation.collector_operator_id, metadata: {} },
          trx,
        ),
      ),
    ).rejects.toMatchObject({ code: 'binding_taken', details: { field: 'collector_operator_id' } });
  });

  it('refuses to unbind while a batch is pending or active, then frees the device', async () => {
    const w = await f.world();
    const { batch } = await f.tx((trx) =>
      f.batches.create(
        w.actor,
        {
          order_id: w.order.id,
          workstation_id: w.workstation.id,
          task_groups: [{ group: 'g', quantity: 1 }],
          metadata: {},
        },
        trx,
      ),
    );
    await expect(f.tx((trx) => f.workstations.unbind(w.actor, w.workstation.id, trx))).rejects.toMatchObject({
      code: 'invalid_state',
      details: { open_batches: [{ id: batch.id, status: 'pending' }] },
    });
    await f.tx((trx) => f.batches.update(w.actor, batch.id, { status: 'cancelled' }, trx));
    await f.tx((trx) => f.workstations.unbind(w.actor, w.workstation.id, trx));
    await expect(f.workstations.get(w.actor, w.workstation.id)).rejects.toMatchObject({ code: 'not_found' });
    await expect(
      f.tx((trx) =>
        f.workstations.create(w.actor, { device_id: w.device, collector_operator_id: 'new-op', metadata: {} }, trx),
      ),
    ).resolves.toMatchObject({ device_id: w.device, is_current: true });
  });

  it('lists current bindings, and history on request', async () => {
    const w = await f.world();
    const next = await f.tx((trx) =>
      f.workstations.update(w.actor, w.workstation.id, { collector_operator_id: 'op-2' }, trx),
    );
    const current = await f.workstations.list(w.actor, { limit: 50, include_history: false });
    expect(current.items.map((x) => x.id)).toEqual([next.id]);
    const all = await f.workstations.list(w.actor, { limit: 50, include_history: true });
    expect(all.items.map((x) => x.id)).toEqual([next.id, w.workstation.id]);
  });
});
