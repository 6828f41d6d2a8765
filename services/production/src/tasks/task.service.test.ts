import { sql } from 'kysely';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ProductionFixture, productionFixture } from '../testing/production-fixture.js';

describe('TaskService', () => {
  let f: ProductionFixture;
  beforeAll(async () => {
    f = await productionFixture();
  });
  afterAll(() => f.cleanup());

  const liveTasks = async (orderId: string) =>
    (
      await sql<{
        n: number;
      }>`select count(*)::int as n from tasks where order_id = ${orderId} and deleted_at is null`.execute(f.db)
    ).rows[0]!.n;

  describe('idempotent creation by external_id', () => {
    it('creates once and answers the same task, unchanged, when the external_id repeats with another body', async () => {
      const w = await f.world();
      const first = await f.tx((trx) =>
        f.tasks.createInOrder(
          w.actor,
          w.order.id,
          { workstation_id: w.workstation.id, external_id: 'ext-1', group: 'a', metadata: { v: 1 } },
          trx,
        ),
      );
      expect(first.created).toBe(true);
      const eventsBefore = (await f.outboxEvents()).length;
      const again = await f.tx((trx) =>
        f.tasks.createInOrder(
          w.actor,
          w.order.id,
          { workstation_id: w.workstation.id, external_id: 'ext-1', group: 'b', metadata: { v: 2 } },
          trx,
        ),
      );
      expect(again).toEqual({ created: false, task: first.task });
      expect((await f.outboxEvents()).length).toBe(eventsBefore); // no side effect at all
      expect(await liveTasks(w.order.id)).toBe(1);
    });

    it('50 concurrent creates with one external_id give one created task and 49 answers with that same task', async () => {
      const w = await f.world({ target: 100 });
      const results = await Promise.all(
        Array.from({ length: 50 }, () =>
          f.tx((trx) =>
            f.tasks.createInOrder(
              w.actor,
              w.order.id,
              { workstation_id: w.workstation.id, external_id: 'race', metadata: {} },
              trx,
            ),
          ),
        ),
      );
      expect(results.filter((r) => r.created)).toHaveLength(1);
      expect(new Set(results.map((r) => r.task.id)).size).toBe(1);
      expect(await liveTasks(w.order.id)).toBe(1);
      const batches = await sql<{
        n: number;
      }>`select count(*)::int as n from batches where order_id = ${w.order.id}`.execute(f.db);
      expect(batches.rows[0]!.n).toBe(1); // no empty batches left behind by the losers
    });

    it('creates a new task for the same external_id in another order', async () => {
      const w = await f.world();
      const other = await f.tx((trx) =>
        f.orders.create(
          w.actor,
          { scene_id: w.scene.id, name: 'second', target_count: 5, priority: 'normal', metadata: {} },
          trx,
        ),
      );
      const a = await f.tx((trx) =>
        f.tasks.createInOrder(
          w.actor,
          w.order.id,
          { workstation_id: w.workstation.id, external_id: 'same', metadata: {} },
          trx,
        ),
      );
      const b = await f.tx((trx) =>
        f.tasks.createInOrder(
          w.actor,
          other.id,
          { workstation_id: w.workstation.id, external_id: 'same', metadata: {} },
          trx,
        ),
      );
      expect(b.created).toBe(true);
      expect(b.task.id).not.toBe(a.task.id);
    });

    it('frees an external_id when its task is deleted', async () => {
      const w = await f.world();
      const a = await f.tx((trx) =>
        f.tasks.createInOrder(
          w.actor,
          w.order.id,
          { workstation_id: w.workstation.id, external_id: 'gone', metadata: {} },
          trx,
        ),
      );
      await f.tx((trx) => f.tasks.delete(w.actor, a.task.id, trx));
      const b = await f.tx((trx) =>
        f.tasks.createInOrder(
          w.actor,
          w.order.id,
          { workstation_id: w.workstation.id, external_id: 'gone', metadata: {} },
          trx,
        ),
      );
      expect(b.created).toBe(true);
    });
  });

  describe('bulk', () => {
    it('creates 10,000 items with half duplicates in one transaction, with a correct summary; a repeat creates 0', async () => {
      const w = await f.world({ target: 10_000 });
      // 5,000 distinct external_ids, each sent twice: the second occurrence is a duplicate within the request.
      const items = Array.from({ length: 10_000 }, (_, i) => ({
        workstation_id: w.workstation.id,
        external_id: `bulk-${i % 5_000}`,
        metadata: {},
      }));
      const first = await f.tx((trx) => f.tasks.bulkCreate(w.actor, w.order.id, items, trx));
      expect(first.summary).toEqual({ total_requested: 10_000, created: 5_000, skipped: 5_000 });
      expect(first.created.map((t) => t.external_id)).toEqual(Array.from({ length: 5_000 }, (_, i) => `bulk-${i}`));
      expect(first.skipped[0]).toMatchObject({
        reason: 'duplicate_external_id',
        external_id: 'bulk-0',
        task: { id: first.created[0]!.id },
      });
      expect(await liveTasks(w.order.id)).toBe(5_000);
      const events = await f.outboxEvents('production.evt.task.created.v1');
      expect(events.filter((e) => e.payload.task.order_id === w.order.id)).toHaveLength(5_000);

      const repeat = await f.tx((trx) => f.tasks.bulkCreate(w.actor, w.order.id, items, trx));
      expect(repeat.summary).toEqual({ total_requested: 10_000, created: 0, skipped: 10_000 });
      expect(repeat.skipped.map((s) => s.task.id).slice(0, 5_000)).toEqual(first.created.map((t) => t.id));
      expect(await liveTasks(w.order.id)).toBe(5_000);
    });

    it('always creates items without an external_id, and mixes them with skipped ones in request order', async () => {
      const w = await f.world();
      await f.tx((trx) =>
        f.tasks.createInOrder(
          w.actor,
          w.order.id,
          { workstation_id: w.workstation.id, external_id: 'x', metadata: {} },
          trx,
        ),
      );
      const result = await f.tx((trx) =>
        f.tasks.bulkCreate(
          w.actor,
          w.order.id,
          [
            { workstation_id: w.workstation.id, metadata: {} },
            { workstation_id: w.workstation.id, external_id: 'x', metadata: {} },
            { workstation_id: w.workstation.id, metadata: {} },
          ],
          trx,
        ),
      );
      expect(result.summary).toEqual({ total_requested: 3, created: 2, skipped: 1 });
    });

    it('refuses a request that would pass the order target, creating nothing', async () => {
      const w = await f.world({ target: 5 });
      await f.tx((trx) =>
        f.tasks.createMany(w.actor, { order_id: w.order.id, workstation_id: w.workstation.id, quantity: 3 }, trx),
      );
      const err = await f
        .tx((trx) =>
          f.tasks.bulkCreate(
            w.actor,
            w.order.id,
            Array.from({ length: 3 }, (_, i) => ({
              workstation_id: w.workstation.id,
              external_id: `q${i}`,
              metadata: {},
            })),
            trx,
          ),
        )
        .catch((e) => e);
      expect(err).toMatchObject({
        code: 'quota_exceeded',
        details: { target_count: 5, task_count: 3, remaining: 2, requested: 3 },
      });
      expect(await liveTasks(w.order.id)).toBe(3);
    });

    it('names the item whose workstation is not a current binding, creating nothing', async () => {
      const w = await f.world();
      const other = await f.world();
      const err = await f
        .tx((trx) =>
          f.tasks.bulkCreate(
            w.actor,
            w.order.id,
            [
              { workstation_id: w.workstation.id, metadata: {} },
              { workstation_id: other.workstation.id, metadata: {} },
            ],
            trx,
          ),
        )
        .catch((e) => e);
      expect(err).toMatchObject({
        code: 'reference_not_found',
        details: { errors: [{ path: 'body.items.1.workstation_id' }] },
      });
      expect(await liveTasks(w.order.id)).toBe(0);
    });
  });

  // invalid_state is the code the gateway answers with 409 (production-units.test.ts checks the HTTP side).
  it('refuses tasks for a completed or cancelled order with invalid_state (409) naming the status, creating nothing', async () => {
    const completed = await f.world({ target: 1 });
    const { tasks } = await f.tx((trx) =>
      f.tasks.createMany(
        completed.actor,
        { order_id: completed.order.id, workstation_id: completed.workstation.id, quantity: 1 },
        trx,
      ),
    );
    // Completed the way orders complete: its one task gets its episode.
    await f.tx((trx) =>
      f.episodes.onUploadVerified(
        {
          upload_id: uuidv7(),
          organization_id: completed.actor.org,
          task_id: tasks[0]!.id,
          device_id: completed.device,
          files: { mcap: { object_key: `k/${tasks[0]!.id}.mcap`, size_bytes: 10, sha256: 'a'.repeat(64) } },
          recording: null,
          verified_at: new Date().toISOString(),
        },
        trx,
      ),
    );
    const cancelled = await f.world();
    await f.tx((trx) => f.orders.update(cancelled.actor, cancelled.order.id, { status: 'cancelled' }, trx));

    for (const [w, status] of [
      [completed, 'completed'],
      [cancelled, 'cancelled'],
    ] as const) {
      expect((await f.orders.get(w.actor, w.order.id)).status).toBe(status);
      const before = await liveTasks(w.order.id);
      const events = (await f.outboxEvents('production.evt.task.created.v1')).length;
      await expect(
        f.tx((trx) =>
          f.tasks.createInOrder(w.actor, w.order.id, { workstation_id: w.workstation.id, metadata: {} }, trx),
        ),
      ).rejects.toMatchObject({ code: 'invalid_state', details: { order_id: w.order.id, current_status: status } });
      await expect(
        f.tx((trx) =>
          f.tasks.bulkCreate(w.actor, w.order.id, [{ workstation_id: w.workstation.id, metadata: {} }], trx),
        ),
      ).rejects.toMatchObject({ code: 'invalid_state', details: { current_status: status } });
      expect(await liveTasks(w.order.id)).toBe(before);
      expect((await f.outboxEvents('production.evt.task.created.v1')).length).toBe(events);
    }
  });

  it('puts tasks of the legacy path in the open batch of (order, workstation), reusing it', async () => {
    const w = await f.world();
    const a = await f.tx((trx) =>
      f.tasks.createMany(w.actor, { order_id: w.order.id, workstation_id: w.workstation.id, quantity: 2 }, trx),
    );
    const b = await f.tx((trx) =>
      f.tasks.createMany(w.actor, { order_id: w.order.id, workstation_id: w.workstation.id, quantity: 3 }, trx),
    );
    expect(b.batch_id).toBe(a.batch_id);
    expect((await f.batches.get(w.actor, a.batch_id)).task_counts.total).toBe(5);
  });

  describe('device actions', () => {
    it('are refused with not_owner for a device that does not own the task, and change nothing', async () => {
      const w = await f.world();
      const { tasks } = await f.tx((trx) =>
        f.tasks.createMany(w.actor, { order_id: w.order.id, workstation_id: w.workstation.id, quantity: 1 }, trx),
      );
      await expect(
        f.tx((trx) => f.tasks.deviceAction(w.actor, { id: tasks[0]!.id, action: 'start', device_id: 'intruder' }, trx)),
      ).rejects.toMatchObject({ code: 'not_owner' });
      expect((await f.tasks.get(w.actor, tasks[0]!.id)).status).toBe('pending');
    });

    it('make finish idempotent: a repeat answers the same task with changed=false and no event', async () => {
      const w = await f.world();
      const { tasks } = await f.tx((trx) =>
        f.tasks.createMany(w.actor, { order_id: w.order.id, workstation_id: w.workstation.id, quantity: 1 }, trx),
      );
      const id = tasks[0]!.id;
      await f.tx((trx) => f.tasks.deviceAction(w.actor, { id, action: 'start', device_id: w.device }, trx));
      const first = await f.tx((trx) =>
        f.tasks.deviceAction(w.actor, { id, action: 'finish', device_id: w.device }, trx),
      );
      const events = (await f.outboxEvents('production.evt.task.status_changed.v1')).length;
      const again = await f.tx((trx) =>
        f.tasks.deviceAction(w.actor, { id, action: 'finish', device_id: w.device }, trx),
      );
      expect(first).toMatchObject({ changed: true, task: { status: 'uploading' } });
      expect(again).toEqual({ changed: false, task: first.task });
      expect((await f.outboxEvents('production.evt.task.status_changed.v1')).length).toBe(events);
    });

    it('keep the binding the task was made under: after re-pairing the old device still owns it, the new one does not', async () => {
      const w = await f.world();
      const { tasks } = await f.tx((trx) =>
        f.batches.create(
          w.actor,
          {
            order_id: w.order.id,
            workstation_id: w.workstation.id,
            task_groups: [{ group: 'g', quantity: 2 }],
            metadata: {},
          },
          trx,
        ),
      );
      const [t1, t2] = tasks as [(typeof tasks)[0], (typeof tasks)[0]];
      await f.tx((trx) => f.tasks.deviceAction(w.actor, { id: t1.id, action: 'start', device_id: w.device }, trx));
      // Re-pairing is refused while the batch is open…
      await expect(
        f.tx((trx) => f.workstations.update(w.actor, w.workstation.id, { device_id: 'new-device' }, trx)),
      ).rejects.toMatchObject({
        code: 'invalid_state',
        details: { open_batches: [{ id: t1.batch_id }] },
      });
      // …so finish the batch: t1 fails its upload, t2 is deleted.
      await f.tx((trx) =>
        f.tasks.deviceAction(w.actor, { id: t1.id, action: 'fail', device_id: w.device, reason: 'cable' }, trx),
      );
      await f.tx((trx) => f.tasks.delete(w.actor, t2.id, trx));
      expect((await f.batches.get(w.actor, t1.batch_id)).status).toBe('completed');

      const next = await f.tx((trx) =>
        f.workstations.update(w.actor, w.workstation.id, { device_id: 'new-device' }, trx),
      );
      expect(next).toMatchObject({
        is_current: true,
        device_id: 'new-device',
        collector_operator_id: w.workstation.collector_operator_id,
      });
      expect(next.id).not.toBe(w.workstation.id);
      expect(await f.workstations.get(w.actor, w.workstation.id)).toMatchObject({
        is_current: false,
        superseded_by: next.id,
        device_id: w.device,
      });
      // The failed task still names the old binding: its device is the owner, the new device is not.
      expect((await f.tasks.get(w.actor, t1.id)).workstation_id).toBe(w.workstation.id);
      await expect(
        f.tx((trx) =>
          f.tasks.deviceAction(w.actor, { id: t1.id, action: 'fail', device_id: 'new-device', reason: 'x' }, trx),
        ),
      ).rejects.toMatchObject({ code: 'not_owner' });
      await expect(
        f.tx((trx) =>
          f.tasks.deviceAction(w.actor, { id: t1.id, action: 'fail', device_id: w.device, reason: 'x' }, trx),
        ),
      ).resolves.toMatchObject({ changed: false });
    });
  });

  it('serves the config only while the task is pending', async () => {
    const w = await f.world();
    const { tasks } = await f.tx((trx) =>
      f.tasks.createMany(
        w.actor,
        { order_id: w.order.id, workstation_id: w.workstation.id, quantity: 1, group: 'left' },
        trx,
      ),
    );
    const config = await f.tasks.config(w.actor, tasks[0]!.id);
    expect(config).toMatchObject({
      task_id: tasks[0]!.id,
      device_id: w.device,
      group: 'left',
      scene: { id: w.scene.id },
    });
    await f.tx((trx) => f.tasks.deviceAction(w.actor, { id: tasks[0]!.id, action: 'ready', device_id: w.device }, trx));
    await expect(f.tasks.config(w.actor, tasks[0]!.id)).rejects.toMatchObject({
      code: 'invalid_state',
      details: { current_status: 'ready' },
    });
  });
});
