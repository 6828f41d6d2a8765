import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { actorOf, productionFixture } from '../testing/production-fixture.js';

describe('SceneService', () => {
  let f: Awaited<ReturnType<typeof productionFixture>>;
  beforeAll(async () => {
    f = await productionFixture();
  });
  afterAll(() => f.cleanup());

  it('creates a scene and records scene.created in the same transaction', async () => {
    const actor = actorOf();
    const scene = await f.tx((trx) => f.scenes.create(actor, { name: 'kitchen-pick', description: 'pick cups' }, trx));
    expect(scene).toMatchObject({ name: 'kitchen-pick', description: 'pick cups', organization_id: actor.org });
    const events = await f.outboxEvents('production.evt.scene.created.v1');
    expect(events.filter((e) => e.payload.scene.id === scene.id)).toHaveLength(1);
  });

  it('keeps names unique per organization among live scenes, and frees a deleted name', async () => {
    const actor = actorOf();
    const first = await f.tx((trx) => f.scenes.create(actor, { name: 'shelf' }, trx));
    await expect(f.tx((trx) => f.scenes.create(actor, { name: 'shelf' }, trx))).rejects.toMatchObject({
      code: 'name_taken',
    });
    await expect(f.tx((trx) => f.scenes.create(actorOf(), { name: 'shelf' }, trx))).resolves.toMatchObject({
      name: 'shelf',
    });
    await f.tx((trx) => f.scenes.delete(actor, first.id, trx));
    await expect(f.tx((trx) => f.scenes.create(actor, { name: 'shelf' }, trx))).resolves.toMatchObject({
      name: 'shelf',
    });
  });

  it('hides another organization’s scene as not found', async () => {
    const scene = await f.tx((trx) => f.scenes.create(actorOf(), { name: 'private' }, trx));
    await expect(f.scenes.get(actorOf(), scene.id)).rejects.toMatchObject({ code: 'not_found' });
    await expect(f.tx((trx) => f.scenes.delete(actorOf(), scene.id, trx))).rejects.toMatchObject({ code: 'not_found' });
  });

  it('refuses to delete a scene live orders use, naming them, and changes nothing', async () => {
    const actor = actorOf();
    const scene = await f.tx((trx) => f.scenes.create(actor, { name: 'in-use' }, trx));
    const order = await f.tx((trx) =>
      f.orders.create(
        actor,
        { scene_id: scene.id, name: 'o1', target_count: 5, priority: 'normal', metadata: {} },
        trx,
      ),
    );
    const err = await f.tx((trx) => f.scenes.delete(actor, scene.id, trx)).catch((e) => e);
    expect(err).toMatchObject({
      code: 'referenced',
      details: { referenced_by: [{ type: 'order', id: order.id, name: 'o1' }], reference_count: 1 },
    });
    await expect(f.scenes.get(actor, scene.id)).resolves.toMatchObject({ id: scene.id });
    // Once the order is gone the scene may go.
    await f.tx((trx) => f.orders.delete(actor, order.id, trx));
    await expect(f.tx((trx) => f.scenes.delete(actor, scene.id, trx))).resolves.toMatchObject({ id: scene.id });
  });

  it('never lets a scene delete and a new order on it both succeed when they race', async () => {
    const actor = actorOf();
    for (let i = 0; i < 15; i++) {
      const scene = await f.tx((trx) => f.scenes.create(actor, { name: `race-${i}` }, trx));
      const [del, create] = await Promise.allSettled([
        f.tx((trx) => f.scenes.delete(actor, scene.id, trx)),
        f.tx((trx) =>
          f.orders.create(
            actor,
            { scene_id: scene.id, name: `race-order-${i}`, target_count: 1, priority: 'normal', metadata: {} },
            trx,
          ),
        ),
      ]);
      expect([del.status, create.status].filter((s) => s === 'fulfilled')).toHaveLength(1);
      const reason = (del.status === 'rejected' ? del.reason : (create as PromiseRejectedResult).reason) as {
        code: string;
      };
      expect(['referenced', 'not_found']).toContain(reason.code);
    }
  });

  it('updates name and description, records which fields changed, and reports a taken name', async () => {
    const actor = actorOf();
    const a = await f.tx((trx) => f.scenes.create(actor, { name: 'a' }, trx));
    await f.tx((trx) => f.scenes.create(actor, { name: 'b' }, trx));
    const updated = await f.tx((trx) => f.scenes.update(actor, a.id, { name: 'a2', description: 'd' }, trx));
    expect(updated).toMatchObject({ name: 'a2', description: 'd' });
    const [event] = (await f.outboxEvents('production.evt.scene.updated.v1')).filter(
      (e) => e.payload.scene.id === a.id,
    );
    expect(event!.payload.changed.sort()).toEqual(['description', 'name']);
    await expect(f.tx((trx) => f.scenes.update(actor, a.id, { name: 'b' }, trx))).rejects.toMatchObject({
      code: 'name_taken',
    });
  });

  it('lists newest first in pages joined by an opaque cursor, filtered by name', async () => {
    const actor = actorOf();
    for (const n of ['p1', 'p2', 'p3', 'x1']) await f.tx((trx) => f.scenes.create(actor, { name: n }, trx));
    const first = await f.scenes.list(actor, { limit: 2 });
    expect(first.items.map((s) => s.name)).toEqual(['x1', 'p3']);
    const second = await f.scenes.list(actor, { limit: 2, cursor: first.next_cursor! });
    expect(second.items.map((s) => s.name)).toEqual(['p2', 'p1']);
    expect(second.next_cursor).toBeNull();
    expect((await f.scenes.list(actor, { limit: 50, q: 'P' })).items.map((s) => s.name)).toEqual(['p3', 'p2', 'p1']);
    await expect(f.scenes.list(actor, { limit: 2, cursor: 'bogus' })).rejects.toMatchObject({
      code: 'validation_failed',
    });
  });
});
