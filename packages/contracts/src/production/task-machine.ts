/**
 * The task state machine (DESIGN §5, Keystone §2.1), as one table every transition goes through.
 * `uploading` never goes back; failed, cancelled and completed are terminal; device callbacks that
 * arrive late or twice are no-ops rather than errors where the outcome already holds.
 */
export const TASK_STATUSES = [
  'pending',
  'ready',
  'in_progress',
  'uploading',
  'completed',
  'failed',
  'cancelled',
] as const;
export type TaskStatusName = (typeof TASK_STATUSES)[number];

export const TASK_ACTIONS = ['ready', 'start', 'finish', 'fail', 'complete', 'cancel', 'delete', 'configure'] as const;
export type TaskAction = (typeof TASK_ACTIONS)[number];

export type TaskDecision =
  /** Change the status (a guarded update from the current one). `deleted` means soft delete. */
  | { kind: 'move'; to: TaskStatusName | 'deleted' }
  /** Allowed, nothing to change (idempotent repeat, or an outcome that already holds). */
  | { kind: 'noop' }
  /** Not allowed in this status. */
  | { kind: 'refuse'; reason: string };

const move = (to: TaskStatusName | 'deleted'): TaskDecision => ({ kind: 'move', to });
const noop: TaskDecision = { kind: 'noop' };
const refuse = (reason: string): TaskDecision => ({ kind: 'refuse', reason });

export const TASK_MACHINE: Readonly<Record<TaskAction, Readonly<Record<TaskStatusName, TaskDecision>>>> = {
  /** The device loaded the task's config. */
  ready: {
    pending: move('ready'),
    ready: noop,
    in_progress: refuse('the task is already recording'),
    uploading: refuse('the task is already uploading'),
    completed: refuse('the task is completed'),
    failed: refuse('the task failed'),
    cancelled: refuse('the task was cancelled'),
  },
  /** The device started recording. `pending` is accepted for reconnect skew (Keystone). */
  start: {
    pending: move('in_progress'),
    ready: move('in_progress'),
    in_progress: noop,
    uploading: refuse('the recording already finished; a second recording cannot start under this task'),
    completed: refuse('the task is completed'),
    failed: refuse('the task failed'),
    cancelled: refuse('the task was cancelled'),
  },
  /** The device finished recording and starts uploading. Repeats are no-ops. */
  finish: {
    pending: move('uploading'),
    ready: move('uploading'),
    in_progress: move('uploading'),
    uploading: noop,
    completed: noop,
    failed: refuse('the task failed'),
    cancelled: refuse('the task was cancelled'),
  },
  /** The device reports the upload failed. */
  fail: {
    pending: refuse('the task has not started recording'),
    ready: refuse('the task has not started recording'),
    in_progress: move('failed'),
    uploading: move('failed'),
    completed: refuse('the task is completed'),
    failed: noop,
    cancelled: refuse('the task was cancelled'),
  },
  /** A verified upload created the task's episode. */
  complete: {
    pending: move('completed'),
    ready: move('completed'),
    in_progress: move('completed'),
    uploading: move('completed'),
    completed: noop,
    failed: refuse('the task failed'),
    cancelled: refuse('the task was cancelled'),
  },
  /** Batch cancel, recall, or order completion. An upload in flight is never cancelled. */
  cancel: {
    pending: move('cancelled'),
    ready: move('cancelled'),
    in_progress: move('cancelled'),
    uploading: noop,
    completed: noop,
    failed: noop,
    cancelled: noop,
  },
  /** Soft delete: refused once a recording exists or is on its way. */
  delete: {
    pending: move('deleted'),
    ready: move('deleted'),
    in_progress: move('deleted'),
    uploading: refuse('the task is uploading'),
    completed: refuse('the task is completed'),
    failed: move('deleted'),
    cancelled: move('deleted'),
  },
  /** Reading the task's recording config: only before anything happened. */
  configure: {
    pending: noop,
    ready: refuse('the task is not configurable once ready'),
    in_progress: refuse('the task is not configurable while recording'),
    uploading: refuse('the task is not configurable while uploading'),
    completed: refuse('the task is completed'),
    failed: refuse('the task failed'),
    cancelled: refuse('the task was cancelled'),
  },
};

export function decideTask(status: TaskStatusName, action: TaskAction): TaskDecision {
  return TASK_MACHINE[action][status];
}

export const TERMINAL_TASK_STATUSES: readonly TaskStatusName[] = ['completed', 'failed', 'cancelled'];
export const RUNNABLE_TASK_STATUSES: readonly TaskStatusName[] = ['pending', 'ready', 'in_progress'];
