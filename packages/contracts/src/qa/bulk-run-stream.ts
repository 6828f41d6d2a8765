import { z } from 'zod';
import type { BulkRunStatus } from './bulk-runs.js';

/**
 * The event names of a bulk run's text/event-stream (`GET /data-ops/bulk-runs/{id}/events`): a snapshot
 * first, progress, then exactly one terminal event, after which the server closes. Every frame's `data`
 * is the whole BulkRun; its `id` is the QA stream sequence, which `Last-Event-ID` resumes from.
 */
export const BULK_RUN_STREAM_EVENTS = {
  snapshot: 'bulk_run_snapshot',
  progress: 'bulk_run_progress',
  completed: 'bulk_run_completed',
  failed: 'bulk_run_failed',
  interrupted: 'bulk_run_interrupted',
  cancelled: 'bulk_run_cancelled',
} as const;
export type BulkRunStreamEvent = (typeof BULK_RUN_STREAM_EVENTS)[keyof typeof BULK_RUN_STREAM_EVENTS];

/** The terminal event name for a finished run's status. */
export function bulkRunTerminalEvent(status: BulkRunStatus): BulkRunStreamEvent | undefined {
  switch (status) {
    case 'completed':
      return BULK_RUN_STREAM_EVENTS.completed;
    case 'failed':
      return BULK_RUN_STREAM_EVENTS.failed;
    case 'interrupted':
      return BULK_RUN_STREAM_EVENTS.interrupted;
    case 'cancelled':
      return BULK_RUN_STREAM_EVENTS.cancelled;
    default:
      return undefined;
  }
}

/** A stream sequence as an SSE id (what `Last-Event-ID` carries back). */
export const EventId = z.string().regex(/^\d{1,15}$/, 'must be an event id the stream sent (digits)');

export const BulkRunEventsQuery = z
  .object({
    /** For clients that cannot set the Last-Event-ID header (a new EventSource): resume after this id. */
    last_event_id: EventId.optional(),
  })
  .strict();
