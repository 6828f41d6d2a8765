import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inProcessGateway } from '../../../../test/support/gateway-app.js';
import { json } from '../../../../test/support/http.js';
import { System } from '../../../../test/support/system.js';

/** Workstations, batches, tasks and episodes over HTTP, against the real production service. */
describe('production units over HTTP', () => {
  let system: System;
  let request: ReturnType<typeof inProcessGateway>['request'];
  let token: string;
  let viewer: string;
  const org = uuidv7();

  beforeAll(async () => {
    system = await System.create();
    await system.start(['production']);
    request = inProcessGateway(system).request;
    token = await system.token(org, 'operator');
    viewer = await system.token(org, 'viewer');
  });
  afterAll(() => system?.shutdown());

  const callAs =
    (as: () => string) =>
    async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
      const res = await request(method, path, { token: as(), body, headers });
      return { status: res.status, body: res.status === 204 ? undefined : await json(res) };
    };
  const call = callAs(() => token);

  async function world(target = 20, as = call) {
    const scene = (await as('POST', '/scenes', { name: `s-${uuidv7()}` })).body;
    const order = (await as('POST', '/orders', { scene_id: scene.id, name: `o-${uuidv7()}`, target_count: target }))
      .body;
    const device = `dev-${uuidv7().slice(-8)}`;
    const ws = await as('POST', '/workstations', { device_id: device, collector_operator_id: `op-${device}` });
    expect(ws.status).toBe(201);
    return { scene, order, workstation: ws.body, device };
  }

  it('answers 50 concurrent creates with one external_id with exactly one 201 and 49 × 200 of the same task', async () => {
    const w = await world(100);
    const responses = await Promise.all(
      Array.from({ length: 50 }, () =>
        call('POST', `/orders/${w.order.id}/tasks`, { workstation_id: w.workstation.id, external_id: 'shared-ext' }),
      ),
    );
    const statuses = responses.map((r) => r.status).sort();
    expect(statuses.filter((s) => s === 201)).toHaveLength(1);
    expect(statuses.filter((s) => s === 200)).toHaveLength(49);
    expect(new Set(responses.map((r) => r.body.id)).size).toBe(1);
    const list = await call('GET', `/tasks?order_id=${w.order.id}&external_id=shared-ext`);
    expect(list.body.items).toHaveLength(1);
  });

  it('bulk-creates 10,000 tasks through the gateway, half of them duplicates, and a repeat creates none', async () => {
    const w = await world(10_000);
    const items = Array.from({ length: 10_000 }, (_, i) => ({
      workstation_id: w.workstation.id,
      external_id: `e-${i % 5000}`,
    }));
    const first = await call('POST', `/orders/${w.order.id}/tasks:bulk`, { items });
    expect(first.status).toBe(201);
    expect(first.body.summary).toEqual({ total_requested: 10_000, created: 5_000, skipped: 5_000 });
    expect(first.body.skipped[0]).toMatchObject({ reason: 'duplicate_external_id', external_id: 'e-0' });
    const repeat = await call('POST', `/orders/${w.order.id}/tasks:bulk`, { items });
    expect(repeat.status).toBe(200);
    expect(repeat.body.summary).toEqual({ total_requested: 10_000, created: 0, skipped: 10_000 });
    expect((await call('GET', `/orders/${w.order.id}`)).body.task_count).toBe(5_000);
  });

  it('refuses a bulk request over the limit or with an invalid item with 400 naming the item, creating nothing', async () => {
    const w = await world(20_000);
    const tooMany = await call('POST', `/orders/${w.order.id}/tasks:bulk`, {
      items: Array.from({ length: 10_001 }, () => ({ workstation_id: w.workstation.id })),
    });
    expect(tooMany.status).toBe(400);
    expect(tooMany.body.errors).toEqual([{ path: 'body.items', message: expect.stringMatching(/10000/) }]);
    const items: unknown[] = Array.from({ length: 5 }, () => ({ workstation_id: w.workstation.id }));
    items[3] = { workstation_id: 'not-a-uuid', external_id: '' };
    const invalid = await call('POST', `/orders/${w.order.id}/tasks:bulk`, { items });
    expect(invalid.status).toBe(400);
    expect(invalid.body.errors.map((e: { path: string }) => e.path).sort()).toEqual([
      'body.items.3.external_id',
      'body.items.3.workstation_id',
    ]);
    expect((await call('GET', `/orders/${w.order.id}`)).body.task_count).toBe(0);
  });

  it('answers 422 naming the body field for another organization’s order or workstation in a body, creating nothing', async () => {
    const other = await system.token(uuidv7(), 'operator');
    const asOther = callAs(() => other);
    const theirs = await world(20, asOther);
    const w = await world();
    const taskCounts = async () => [
      (await call('GET', `/orders/${w.order.id}`)).body.task_count,
      (await asOther('GET', `/orders/${theirs.order.id}`)).body.task_count,
    ];
    const refusals = {
      createBatch: await call('POST', '/batches', {
        order_id: theirs.order.id,
        workstation_id: w.workstation.id,
        task_groups: [{ group: 'g', quantity: 1 }],
      }),
      createTasks: await call('POST', '/tasks', {
        order_id: theirs.order.id,
        workstation_id: w.workstation.id,
        quantity: 2,
      }),
    };
    for (const [route, res] of Object.entries(refusals)) {
      expect(res.status, route).toBe(422);
      expect(res.body, route).toMatchObject({
        code: 'reference_not_found',
        errors: [{ path: 'body.order_id', message: 'no such order in this organization' }],
      });
      expect(JSON.stringify(res.body), route).not.toContain(theirs.order.name);
    }
    const workstation = await call('POST', '/batches', {
      order_id: w.order.id,
      workstation_id: theirs.workstation.id,
      task_groups: [{ group: 'g', quantity: 1 }],
    });
    expect(workstation.status).toBe(422);
    expect(workstation.body).toMatchObject({ code: 'reference_not_found', errors: [{ path: 'body.workstation_id' }] });
    // tasks:bulk names its order in the path (404, as any path id); its items' workstations are body references.
    const bulkTheirOrder = await call('POST', `/orders/${theirs.order.id}/tasks:bulk`, {
      items: [{ workstation_id: w.workstation.id }],
    });
    expect(bulkTheirOrder.status).toBe(404);
    expect(bulkTheirOrder.body.code).toBe('not_found');
    const bulkTheirWorkstation = await call('POST', `/orders/${w.order.id}/tasks:bulk`, {
      items: [{ workstation_id: w.workstation.id }, { workstation_id: theirs.workstation.id }],
    });
    expect(bulkTheirWorkstation.status).toBe(422);
    expect(bulkTheirWorkstation.body).toMatchObject({
      code: 'reference_not_found',
      errors: [{ path: 'body.items.1.workstation_id' }],
    });
    expect(await taskCounts()).toEqual([0, 0]);
    expect((await call('GET', `/batches?workstation_id=${w.workstation.id}`)).body.items).toEqual([]);
  });

  it('runs a task through its device actions, idempotently, and refuses what the state machine refuses', async () => {
    const w = await world();
    const created = await call('POST', '/batches', {
      order_id: w.order.id,
      workstation_id: w.workstation.id,
      task_groups: [{ group: 'pick', quantity: 2 }],
    });
    expect(created.status).toBe(201);
    const [task, other] = created.body.tasks;
    const config = await call('GET', `/tasks/${task.id}/config`);
    expect(config.body).toMatchObject({ task_id: task.id, device_id: w.device, group: 'pick' });

    const intruder = await call('POST', `/tasks/${task.id}/start`, { device_id: 'intruder' });
    expect(intruder.status).toBe(403);
    expect(intruder.body.code).toBe('not_owner');

    expect((await call('POST', `/tasks/${task.id}/start`, { device_id: w.device })).body).toMatchObject({
      changed: true,
      task: { status: 'in_progress' },
    });
    expect((await call('GET', `/tasks/${task.id}/config`)).body).toMatchObject({
      code: 'invalid_state',
      details: { current_status: 'in_progress' },
    });
    const finish = await call('POST', `/tasks/${task.id}/finish`, { device_id: w.device });
    expect(finish.body).toMatchObject({ changed: true, task: { status: 'uploading' } });
    const again = await call('POST', `/tasks/${task.id}/finish`, { device_id: w.device });
    expect(again).toMatchObject({ status: 200, body: { changed: false, task: { status: 'uploading' } } });
    expect((await call('DELETE', `/tasks/${task.id}`)).body).toMatchObject({ code: 'invalid_state' });

    await call('PATCH', `/batches/${created.body.batch.id}`, { status: 'cancelled' });
    const late = await call('POST', `/tasks/${other.id}/finish`, { device_id: w.device });
    expect(late.status).toBe(409);
    expect(late.body).toMatchObject({ code: 'invalid_state', details: { current_status: 'cancelled' } });
    const batch = (await call('GET', `/batches/${created.body.batch.id}`)).body;
    expect(batch).toMatchObject({ status: 'cancelled', task_counts: { uploading: 1, cancelled: 1 } });
  });

  it('refuses to delete an order its batches and tasks refer to, naming them, then lets it go once they are gone', async () => {
    const w = await world();
    const created = (
      await call('POST', '/batches', {
        order_id: w.order.id,
        workstation_id: w.workstation.id,
        task_groups: [{ group: 'g', quantity: 1 }],
      })
    ).body;
    const refused = await call('DELETE', `/orders/${w.order.id}`);
    expect(refused.status).toBe(409);
    expect(refused.body).toMatchObject({
      code: 'referenced',
      details: {
        referenced_by: [{ type: 'batch', id: created.batch.id }],
        reference_counts: { batches: 1, tasks: 1, episodes: 0 },
      },
    });
    expect((await call('GET', `/orders/${w.order.id}`)).status).toBe(200);
    expect((await call('DELETE', `/batches/${created.batch.id}`)).body).toMatchObject({
      batch_deleted: true,
      tasks_removed: 1,
    });
    expect((await call('DELETE', `/orders/${w.order.id}`)).status).toBe(204);
  });

  it('answers 409 for a batch over the quota and for a completed order, with the numbers', async () => {
    const w = await world(3);
    const over = await call('POST', '/batches', {
      order_id: w.order.id,
      workstation_id: w.workstation.id,
      task_groups: [{ group: 'g', quantity: 4 }],
    });
    expect(over.status).toBe(409);
    expect(over.body).toMatchObject({
      code: 'quota_exceeded',
      details: { target_count: 3, task_count: 0, remaining: 3, requested: 4 },
    });
    const dup = await call('POST', '/batches', {
      order_id: w.order.id,
      workstation_id: w.workstation.id,
      task_groups: [
        { group: 'g', quantity: 1 },
        { group: 'g', quantity: 1 },
      ],
    });
    expect(dup.status).toBe(400);
    expect(dup.body.errors[0].path).toBe('body.task_groups.1.group');

    // Completed (in_progress → completed by hand), the order takes neither batches nor tasks.
    expect((await call('PATCH', `/orders/${w.order.id}`, { status: 'in_progress' })).status).toBe(200);
    expect((await call('PATCH', `/orders/${w.order.id}`, { status: 'completed' })).body).toMatchObject({
      status: 'completed',
    });
    const batch = await call('POST', '/batches', {
      order_id: w.order.id,
      workstation_id: w.workstation.id,
      task_groups: [{ group: 'g', quantity: 1 }],
    });
    expect(batch.status).toBe(409);
    expect(batch.body).toMatchObject({
      code: 'invalid_state',
      details: { order_id: w.order.id, current_status: 'completed' },
    });
    const task = await call('POST', `/orders/${w.order.id}/tasks`, { workstation_id: w.workstation.id });
    expect(task).toMatchObject({
      status: 409,
      body: { code: 'invalid_state', details: { current_status: 'completed' } },
    });
    expect((await call('GET', `/orders/${w.order.id}`)).body).toMatchObject({ status: 'completed', task_count: 0 });
  });

  it('re-pairs a workstation into a new binding and keeps the old one readable', async () => {
    const w = await world();
    const next = await call('PATCH', `/workstations/${w.workstation.id}`, {
      collector_operator_id: `op2-${uuidv7().slice(-6)}`,
    });
    expect(next.status).toBe(200);
    expect(next.body.id).not.toBe(w.workstation.id);
    expect((await call('GET', `/workstations/${w.workstation.id}`)).body).toMatchObject({
      is_current: false,
      superseded_by: next.body.id,
    });
    const taken = await call('POST', '/workstations', { device_id: w.device, collector_operator_id: 'another' });
    expect(taken).toMatchObject({ status: 409, body: { code: 'binding_taken' } });
  });

  it('lets a viewer read but not act', async () => {
    const w = await world();
    const res = await request('POST', '/batches', {
      token: viewer,
      body: { order_id: w.order.id, workstation_id: w.workstation.id, task_groups: [{ group: 'g', quantity: 1 }] },
    });
    expect(res.status).toBe(403);
    expect((await request('GET', `/workstations/${w.workstation.id}`, { token: viewer })).status).toBe(200);
    expect((await request('GET', '/episodes', { token: viewer })).status).toBe(200);
  });
});
