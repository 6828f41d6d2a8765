import {
  BULK_RUN_STREAM_EVENTS,
  BulkQaBody,
  BulkQaPreview,
  BulkRun,
  BulkRunEventsQuery,
  BulkRunIdParams,
  BulkRunListQuery,
  BulkRunPage,
  bulkRunRpc,
  EventId,
  StreamTicket,
} from '@ferry/contracts';
import { DomainError } from '@ferry/platform';
import { BulkRunRelay } from '../bulk-runs/bulk-run-relay.js';
import { defineRoute, eventStream, noContent, ok } from '../http/route.js';

const READERS = ['admin', 'operator', 'viewer'] as const;
const WRITERS = ['admin', 'operator'] as const;
const tags = ['Data ops'];

const eventsPath = (id: string) => `/api/v1/data-ops/bulk-runs/${id}/events`;
const ticketScope = (id: string) => `bulk_run:${id}`;

/** `Last-Event-ID` (the header browsers send on reconnect) or its query fallback, as a stream sequence. */
function lastEventIdOf(request: Request, query: { last_event_id?: string }): number | undefined {
  const header = request.headers.get('last-event-id');
  if (header !== null && header !== '') {
    if (!EventId.safeParse(header).success) {
      throw new DomainError('validation_failed', 'Last-Event-ID must be an id this stream sent', {
        errors: [{ path: 'header.last-event-id', message: 'must be digits (a stream sequence)' }],
      });
    }
    return Number(header);
  }
  return query.last_event_id === undefined ? undefined : Number(query.last_event_id);
}

export const bulkRunRoutes = [
  defineRoute({
    method: 'POST',
    path: '/data-ops/bulk-qa',
    operationId: 'bulkQa',
    summary: 'Preview or start a bulk QA run',
    description:
      'Without `confirm`: a **preview** (200): how many episodes the filters match and would be checked, no side ' +
      'effects. With `confirm: true`: **starts a run** (202) over the episodes matched now (the set is fixed at this ' +
      'moment); follow it with `GET /data-ops/bulk-runs/{id}` or its event stream. One active run per organization: ' +
      'a second start answers 409 `bulk_run_active` whose `details` carry the active `run_id` and `status`. ' +
      '`Idempotency-Key` applies to a start only: a preview is never stored (a key sent with one is ignored).',
    tags,
    roles: WRITERS,
    body: BulkQaBody,
    // Only a start is a command; a preview's counts are read fresh every time, never replayed.
    idempotent: ({ body }) => body.confirm === true,
    responses: {
      200: { description: 'A preview (no `confirm`): counts only, nothing changed.', schema: BulkQaPreview },
      202: { description: 'The run started (`confirm: true`): its first snapshot.', schema: BulkRun },
    },
    errors: {
      400: '`confirm: false` (omit it for a preview).',
      409: 'The organization already has a run queued or running (`bulk_run_active`, with its `run_id`).',
    },
    async handle({ body }, { rpc, call }) {
      if (body.confirm === false) {
        throw new DomainError('validation_failed', 'confirm must be true to start a run; omit it for a preview', {
          errors: [{ path: 'body.confirm', message: 'must be true to start a run; omit it for a preview' }],
        });
      }
      if (body.confirm !== true) return ok(await rpc.call(bulkRunRpc.preview, { filters: body.filters }, call));
      const run = await rpc.call(bulkRunRpc.execute, { filters: body.filters }, call);
      return { status: 202, body: run, headers: { Location: `/api/v1/data-ops/bulk-runs/${run.run_id}` } };
    },
  }),
  defineRoute({
    method: 'GET',
    path: '/data-ops/bulk-runs/current',
    operationId: 'getCurrentBulkRun',
    summary: 'Get the active bulk run',
    description: 'The organization’s queued or running bulk run; 204 when there is none.',
    tags,
    roles: READERS,
    responses: {
      200: { description: 'The active run.', schema: BulkRun },
      204: { description: 'No run is queued or running.' },
    },
    async handle(_input, { rpc, call }) {
      const { run } = await rpc.call(bulkRunRpc.current, {}, call);
      return run ? ok(run) : noContent();
    },
  }),
  defineRoute({
    method: 'GET',
    path: '/data-ops/bulk-runs',
    operationId: 'listBulkRuns',
    summary: 'List bulk runs',
    description: 'Newest first; filter `status` (comma list).',
    tags,
    roles: READERS,
    query: BulkRunListQuery,
    responses: { 200: { description: 'A page of runs.', schema: BulkRunPage } },
    async handle({ query }, { rpc, call }) {
      return ok(await rpc.call(bulkRunRpc.list, { query }, call));
    },
  }),
  defineRoute({
    method: 'GET',
    path: '/data-ops/bulk-runs/:id',
    operationId: 'getBulkRun',
    summary: 'Get a bulk run',
    description: 'Its status and counters (`processed = passed + qa_failed + processing_failed + skipped`).',
    tags,
    roles: READERS,
    params: BulkRunIdParams,
    responses: { 200: { description: 'The run.', schema: BulkRun } },
    async handle({ params }, { rpc, call }) {
      return ok(await rpc.call(bulkRunRpc.get, { id: params.id }, call));
    },
  }),
  defineRoute({
    method: 'POST',
    path: '/data-ops/bulk-runs/:id/cancel',
    operationId: 'cancelBulkRun',
    summary: 'Cancel a bulk run',
    description:
      'Episodes already being checked finish; the rest are not started. The run ends `cancelled`. Cancelling a run ' +
      'that has already ended changes nothing and answers it as it is (so a repeated cancel is safe).',
    tags,
    roles: WRITERS,
    params: BulkRunIdParams,
    idempotent: true,
    responses: { 200: { description: 'The run, with the cancel requested (or already ended).', schema: BulkRun } },
    async handle({ params }, { rpc, call }) {
      return ok(await rpc.call(bulkRunRpc.cancel, { id: params.id }, call));
    },
  }),
  defineRoute({
    method: 'POST',
    path: '/data-ops/bulk-runs/:id/events-ticket',
    operationId: 'createBulkRunEventsTicket',
    summary: 'Get a stream ticket for a run’s events',
    description:
      'For browsers, whose EventSource cannot send an Authorization header: a short-lived ticket (5 minutes) that ' +
      'opens this run’s event stream, and nothing else, as the caller. `events_url` is ready for ' +
      '`new EventSource(events_url)`. Ask for a fresh one to reconnect after it expired.',
    tags,
    roles: READERS,
    params: BulkRunIdParams,
    responses: { 200: { description: 'The ticket and the events URL carrying it.', schema: StreamTicket } },
    async handle({ params }, { rpc, call, actor, tickets, origin }) {
      // 404 for an unknown (or another organization's) run before anything is signed.
      await rpc.call(bulkRunRpc.get, { id: params.id }, call);
      const { ticket, expiresAt } = tickets.issue(actor, ticketScope(params.id));
      const url = new URL(eventsPath(params.id), origin);
      url.searchParams.set('ticket', ticket);
      return ok(StreamTicket.parse({ ticket, expires_at: expiresAt.toISOString(), events_url: url.toString() }));
    },
  }),
  defineRoute({
    method: 'GET',
    path: '/data-ops/bulk-runs/:id/events',
    operationId: 'streamBulkRunEvents',
    summary: 'Follow a bulk run live',
    description:
      'A `text/event-stream`: `bulk_run_snapshot` first, then `bulk_run_progress` as the run moves, then one terminal ' +
      'event (`bulk_run_completed`, `bulk_run_failed`, `bulk_run_interrupted` or `bulk_run_cancelled`), after which ' +
      'the server closes. Every frame’s `data` is the whole run; keep the highest `version`. Every frame has an `id`: ' +
      'reconnect with `Last-Event-ID` (or `?last_event_id=`) to get every later frame exactly once; an id too old ' +
      'to resume from gets a fresh snapshot. `: ping` comments every 15 s. A client that does not read is ' +
      'disconnected (resume by id). Auth: a bearer token, or a stream ticket from `POST …/events-ticket` as `?ticket=`.',
    tags,
    kind: 'events',
    auth: 'ticket',
    ticketScope: (params) => ticketScope(params.id ?? ''),
    roles: READERS,
    params: BulkRunIdParams,
    query: BulkRunEventsQuery,
    events: [
      { name: BULK_RUN_STREAM_EVENTS.snapshot, description: 'The run when the stream opened.', schema: BulkRun },
      { name: BULK_RUN_STREAM_EVENTS.progress, description: 'The run moved.', schema: BulkRun },
      {
        name: BULK_RUN_STREAM_EVENTS.completed,
        description: 'Terminal: every episode was processed.',
        schema: BulkRun,
      },
      { name: BULK_RUN_STREAM_EVENTS.failed, description: 'Terminal: the run failed.', schema: BulkRun },
      {
        name: BULK_RUN_STREAM_EVENTS.interrupted,
        description: 'Terminal: its workers stopped (start a new run).',
        schema: BulkRun,
      },
      { name: BULK_RUN_STREAM_EVENTS.cancelled, description: 'Terminal: cancelled.', schema: BulkRun },
    ],
    responses: {
      200: { description: 'The event stream.', contentType: 'text/event-stream' },
    },
    async handle({ params, query }, { rpc, call, jetstream, log, request, events }) {
      const relay = new BulkRunRelay({
        runId: params.id,
        call,
        rpc,
        jetstream: jetstream(),
        log: log.child({ run_id: params.id }),
        lastEventId: lastEventIdOf(request, query),
        holdSubscription: () => events.holdSubscription(),
        shared: (key, compute) => events.shared(key, compute),
      });
      try {
        await relay.prepare();
      } catch (err) {
        await relay.dispose();
        throw err;
      }
      return eventStream(relay);
    },
  }),
];
