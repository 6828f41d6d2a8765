import { waitFor } from '@ferry/platform/testing';
import { sql, type Transaction } from 'kysely';
import { v7 as uuidv7 } from 'uuid';
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
    /** Inside `trx`, after its work: waits until another transaction is blocked on its locks (the race under test). */
    const holdUntilBlocking = async (trx: Transaction<any>) => {
      const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(trx);
      await waitFor(
        async () => {
          const blocked = await sql<{ n: number }>`
            select count(*)::int as n from pg_stat_activity
            where ${rows[0]!.pid}::int = any(pg_blocking_pids(pid))`.execute(f.db);
          return blocked.rows[0]!.n > 0;
        },
        { timeoutMs: 10_000, what: 'the other transaction to wait on this one' },
      );
    };
    // Both ways round: the first holds its lock on the scene until the second waits on it; then the
    // second, which read the scene before the first committed, must fail.
    for (const first of ['delete', 'create', 'delete', 'create'] as const) {
      const scene = await f.tx((trx) => f.scenes.create(actor, { name: `race-${uuidv7()}` }, trx));
      const work: Record<typeof first, (trx: Transaction<any>) => Promise<unknown>> = {
        delete: (trx: Transaction<any>) => f.scenes.delete(actor, scene.id, trx),
        create: (trx: Transaction<any>) =>
          f.orders.create(
            actor,
            { scene_id: scene.id, name: `race-order-${uuidv7()}`, target_count: 1, priority: 'normal', metadata: {} },
            trx,
          ),
      };
      const second = first === 'delete' ? 'create' : 'delete';
      let locked!: () => void;
      const holding = new Promise<void>((r) => {
        locked = r;
      });
      const winner = f.tx(async (trx) => {
        const result = await work[first](trx);
        locked();
        await holdUntilBlocking(trx);
        return result;
      });
      await Promise.race([holding, winner]);
      const [won, lost] = await Promise.allSettled([winner, f.tx((trx) => work[second](trx))]);
      expect(won.status, first).toBe('fulfilled');
      expect(lost.status, first).toBe('rejected');
      expect(((lost as PromiseRejectedResult).reason as { code: string }).code, first).toBe(
        first === 'delete' ? 'not_found' : 'referenced',
      );
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
