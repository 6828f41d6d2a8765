import { ORDER_TRANSITIONS, type OrderStatus } from '@ferry/contracts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { actorOf, productionFixture } from '../testing/production-fixture.js';

describe('OrderService', () => {
  let f: Awaited<ReturnType<typeof productionFixture>>;
  beforeAll(async () => {
    f = await productionFixture();
  });
  afterAll(() => f.cleanup());

  async function setup() {
    const actor = actorOf();
    const scene = await f.tx((trx) => f.scenes.create(actor, { name: 'scene' }, trx));
    const create = (name: string, extra: Record<string, unknown> = {}) =>
      f.tx((trx) =>
        f.orders.create(
          actor,
          { scene_id: scene.id, name, target_count: 10, priority: 'normal', metadata: {}, ...extra },
          trx,
        ),
      );
    return { actor, scene, create };
  }

  it('creates an order in status created with exactly one order.created event', async () => {
    const { actor, scene, create } = await setup();
    const order = await create('first', { priority: 'high', deadline: '2027-01-01T00:00:00Z', metadata: { line: 3 } });
    expect(order).toMatchObject({
      organization_id: actor.org,
      scene_id: scene.id,
      name: 'first',
      target_count: 10,
      priority: 'high',
      status: 'created',
      deadline: '2027-01-01T00:00:00.000Z',
      metadata: { line: 3 },
    });
    const events = (await f.outboxEvents('production.evt.order.created.v1')).filter(
      (e) => e.payload.order.id === order.id,
    );
    expect(events).toHaveLength(1);
    expect(events[0]!.payload.order).toEqual(order);
  });

  // not_found names what is missing; the gateway answers it 422 naming body.scene_id (gateway.test.ts).
  it('refuses a scene of another organization as not found, naming it', async () => {
    const { scene } = await setup();
    await expect(
      f.tx((trx) =>
        f.orders.create(
          actorOf(),
          { scene_id: scene.id, name: 'x', target_count: 1, priority: 'normal', metadata: {} },
          trx,
        ),
      ),
    ).rejects.toMatchObject({ code: 'not_found', details: { resource: 'scene', id: scene.id } });
  });

  it('lets exactly one of twenty concurrent creates with one name win; the rest get name_taken', async () => {
    const { create, actor } = await setup();
    const results = await Promise.allSettled(Array.from({ length: 20 }, () => create('contested')));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results) if (r.status === 'rejected') expect(r.reason).toMatchObject({ code: 'name_taken' });
    expect((await f.orders.list(actor, { limit: 50, q: 'contested' })).items).toHaveLength(1);
  });

  it('keeps a failed create from leaving an event behind', async () => {
    const { create } = await setup();
    await create('dup');
    const before = (await f.outboxEvents('production.evt.order.created.v1')).length;
    await expect(create('dup')).rejects.toMatchObject({ code: 'name_taken' });
    expect((await f.outboxEvents('production.evt.order.created.v1')).length).toBe(before);
  });

  describe('status graph', () => {
    const all: OrderStatus[] = ['created', 'in_progress', 'paused', 'completed', 'cancelled'];
    /** Reaches `status` through allowed edges only. */
    const paths: Record<OrderStatus, OrderStatus[]> = {
      created: [],
      in_progress: ['in_progress'],
      paused: ['paused'],
      completed: ['in_progress', 'completed'],
      cancelled: ['cancelled'],
    };
    for (const from of all) {
      for (const to of all.filter((s) => s !== from)) {
        const allowed = ORDER_TRANSITIONS[from].includes(to);
        it(`${from} → ${to} is ${allowed ? 'allowed' : 'refused with invalid_transition'}`, async () => {
          const { actor, create } = await setup();
          const order = await create(`${from}-${to}`);
          for (const step of paths[from]) await f.tx((trx) => f.orders.update(actor, order.id, { status: step }, trx));
          const attempt = f.tx((trx) => f.orders.update(actor, order.id, { status: to }, trx));
          if (allowed) {
            await expect(attempt).resolves.toMatchObject({ status: to });
            const [event] = (await f.outboxEvents('production.evt.order.status_changed.v1')).filter(
              (e) => e.payload.order.id === order.id && e.payload.to === to,
            );
            expect(event!.payload).toMatchObject({ from, to, cause: 'manual' });
          } else {
            await expect(attempt).rejects.toMatchObject({ code: 'invalid_transition', details: { from, to } });
            await expect(f.orders.get(actor, order.id)).resolves.toMatchObject({ status: from });
          }
        });
      }
    }
  });

  it('updates attributes with one order.updated event naming the changed fields, and no event for a no-op', async () => {
    const { actor, create } = await setup();
    const order = await create('attrs');
    const updated = await f.tx((trx) =>
      f.orders.update(
        actor,
        order.id,
        { target_count: 20, priority: 'urgent', name: 'attrs', metadata: { a: 1 } },
        trx,
      ),
    );
    expect(updated).toMatchObject({ target_count: 20, priority: 'urgent', metadata: { a: 1 } });
    await f.tx((trx) => f.orders.update(actor, order.id, { target_count: 20 }, trx));
    const events = (await f.outboxEvents('production.evt.order.updated.v1')).filter(
      (e) => e.payload.order.id === order.id,
    );
    expect(events).toHaveLength(1);
    expect(events[0]!.payload.changed.sort()).toEqual(['metadata', 'priority', 'target_count']);
  });

  it('soft-deletes: the order disappears, its name is free again, another org cannot delete it', async () => {
    const { actor, create } = await setup();
    const order = await create('gone');
    await expect(f.tx((trx) => f.orders.delete(actorOf(), order.id, trx))).rejects.toMatchObject({ code: 'not_found' });
    await f.tx((trx) => f.orders.delete(actor, order.id, trx));
    await expect(f.orders.get(actor, order.id)).rejects.toMatchObject({ code: 'not_found' });
    await expect(f.tx((trx) => f.orders.delete(actor, order.id, trx))).rejects.toMatchObject({ code: 'not_found' });
    await expect(create('gone')).resolves.toMatchObject({ name: 'gone' });
  });

  it('filters by status, priority, scene, name and creation time, paging with a cursor', async () => {
    const { actor, create, scene } = await setup();
    const a = await create('alpha', { priority: 'low' });
    const b = await create('beta', { priority: 'urgent' });
    const c = await create('gamma', { priority: 'urgent' });
    await f.tx((trx) => f.orders.update(actor, c.id, { status: 'paused' }, trx));
    const names = async (q: Record<string, unknown>) =>
      (await f.orders.list(actor, { limit: 50, ...q } as never)).items.map((o) => o.name);
    expect(await names({})).toEqual(['gamma', 'beta', 'alpha']);
    expect(await names({ status: ['paused'] })).toEqual(['gamma']);
    expect(await names({ priority: ['urgent'] })).toEqual(['gamma', 'beta']);
    expect(await names({ scene_id: scene.id, q: 'ALP' })).toEqual(['alpha']);
    expect(await names({ created_from: b.created_at })).toEqual(['gamma', 'beta']);
    expect(await names({ created_to: b.created_at })).toEqual(['alpha']);
    const page1 = await f.orders.list(actor, { limit: 2 });
    const page2 = await f.orders.list(actor, { limit: 2, cursor: page1.next_cursor! });
    expect([...page1.items, ...page2.items].map((o) => o.id)).toEqual([c.id, b.id, a.id]);
    expect(await f.orders.list(actorOf(), { limit: 50 })).toEqual({ items: [], next_cursor: null });
  });
});
