import {
  decideTask,
  TASK_ACTIONS,
  TASK_STATUSES,
  type TaskAction,
  type TaskStatus,
  type UploadedFile,
} from '@ferry/contracts';
import { sql } from 'kysely';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ProductionFixture, productionFixture } from '../testing/production-fixture.js';

/**
 * Every (task status × action) pair, driven through the real services on a real database: the
 * resulting status, or the error, is what the state-machine table says — and nothing else moves.
 */
const EXPECTED: Record<TaskAction, Record<TaskStatus, TaskStatus | 'deleted' | 'refused'>> = {
  ready: {
    pending: 'ready',
    ready: 'ready',
    in_progress: 'refused',
    uploading: 'refused',
    completed: 'refused',
    failed: 'refused',
    cancelled: 'refused',
  },
  start: {
    pending: 'in_progress',
    ready: 'in_progress',
    in_progress: 'in_progress',
    uploading: 'refused',
    completed: 'refused',
    failed: 'refused',
    cancelled: 'refused',
  },
  finish: {
    pending: 'uploading',
    ready: 'uploading',
    in_progress: 'uploading',
    uploading: 'uploading',
    completed: 'completed',
    failed: 'refused',
    cancelled: 'refused',
  },
  fail: {
    pending: 'refused',
    ready: 'refused',
    in_progress: 'failed',
    uploading: 'failed',
    completed: 'refused',
    failed: 'failed',
    cancelled: 'refused',
  },
  complete: {
    pending: 'completed',
    ready: 'completed',
    in_progress: 'completed',
    uploading: 'completed',
    completed: 'completed',
    failed: 'refused',
    cancelled: 'refused',
  },
  cancel: {
    pending: 'cancelled',
    ready: 'cancelled',
    in_progress: 'cancelled',
    uploading: 'uploading',
    completed: 'completed',
    failed: 'failed',
    cancelled: 'cancelled',
  },
  delete: {
    pending: 'deleted',
    ready: 'deleted',
    in_progress: 'deleted',
    uploading: 'refused',
    completed: 'refused',
    failed: 'deleted',
    cancelled: 'deleted',
  },
  configure: {
    pending: 'pending',
    ready: 'refused',
    in_progress: 'refused',
    uploading: 'refused',
    completed: 'refused',
    failed: 'refused',
    cancelled: 'refused',
  },
};

const file = (key: string): UploadedFile => ({ object_key: key, size_bytes: 10, sha256: 'a'.repeat(64) });

describe('task state machine (status × action)', () => {
  let f: ProductionFixture;
  beforeAll(async () => {
    f = await productionFixture();
  });
  afterAll(() => f.cleanup());

  it('the table in the contracts says the same as this test', () => {
    for (const action of TASK_ACTIONS) {
      for (const status of TASK_STATUSES) {
        const d = decideTask(status, action);
        const expected = EXPECTED[action][status];
        if (expected === 'refused') expect(d.kind, `${action} on ${status}`).toBe('refuse');
        else if (expected === status) expect(d.kind, `${action} on ${status}`).toBe('noop');
        else expect(d, `${action} on ${status}`).toEqual({ kind: 'move', to: expected });
      }
    }
  });

  /** A task forced into `status` (test setup only: production code never writes a status blindly). */
  async function taskIn(status: TaskStatus) {
    const w = await f.world({ target: 5 });
    const { batch, tasks } = await f.tx((trx) =>
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
    const task = tasks[0]!;
    await sql`update tasks set status = ${status} where id = ${task.id}`.execute(f.db);
    return { ...w, batch, task };
  }

  const statusEventsOf = async (taskId: string) =>
    (await f.outboxEvents('production.evt.task.status_changed.v1')).filter((e) => e.payload.task.id === taskId);

  async function act(w: Awaited<ReturnType<typeof taskIn>>, action: TaskAction): Promise<void> {
    const { actor, task, batch, device } = w;
    switch (action) {
      case 'ready':
      case 'start':
      case 'finish':
      case 'fail':
        await f.tx((trx) =>
          f.tasks.deviceAction(actor, { id: task.id, action, device_id: device, reason: 'disk full' }, trx),
        );
        return;
      case 'complete': {
        const outcome = await f.tx((trx) =>
          f.episodes.onUploadVerified(
            {
              upload_id: uuidv7(),
              organization_id: actor.org,
              task_id: task.id,
              device_id: device,
              files: { mcap: file(`k/${task.id}.mcap`) },
              recording: null,
              verified_at: new Date().toISOString(),
            },
            trx,
          ),
        );
        if (outcome.kind === 'rejected') throw Object.assign(new Error(outcome.reason), { code: 'rejected' });
        return;
      }
      case 'cancel':
        await f.tx((trx) => f.batches.update(actor, batch.id, { status: 'cancelled' }, trx));
        return;
      case 'delete':
        await f.tx((trx) => f.tasks.delete(actor, task.id, trx));
        return;
      case 'configure':
        await f.tasks.config(actor, task.id);
        return;
    }
  }

  for (const action of TASK_ACTIONS) {
    for (const status of TASK_STATUSES) {
      const expected = EXPECTED[action][status];
      it(`${action} on a ${status} task → ${expected}`, async () => {
        const w = await taskIn(status);
        const before = await f.db.selectFrom('tasks').selectAll().where('id', '=', w.task.id).executeTakeFirstOrThrow();
        const eventsBefore = await statusEventsOf(w.task.id);
        const outcome = await act(w, action).then(
          () => 'ok',
          (err: { code?: string }) => err.code,
        );
        const after = await f.db.selectFrom('tasks').selectAll().where('id', '=', w.task.id).executeTakeFirstOrThrow();
        if (expected === 'refused') {
          // Batch cancel of a batch that is not open refuses at the batch level; a refused upload is a rejection.
          expect(['invalid_state', 'rejected', 'invalid_transition']).toContain(outcome);
          expect(after.status).toBe(status);
          expect(after.updated_at).toEqual(before.updated_at);
        } else if (expected === 'deleted') {
          expect(outcome).toBe('ok');
          expect(after.deleted_at).not.toBeNull();
        } else if (expected === status) {
          // A no-op: allowed, and the task is left exactly as it was, with no status event.
          expect(outcome).toBe('ok');
          expect(after).toEqual(before);
          expect(await statusEventsOf(w.task.id)).toEqual(eventsBefore);
        } else {
          expect(outcome).toBe('ok');
          expect(after.status).toBe(expected);
          expect(after.deleted_at).toBeNull();
        }
      });
    }
  }
});
