import { BulkQaFilters, type BulkQaPreview, type BulkRun } from '@ferry/contracts';
import { FollowError, followBulkRun } from '../bulk-runs/bulk-run-follower.js';

export interface BulkQaFlags {
  'qa-status'?: string;
  'scene-id'?: string;
  'order-id'?: string;
  'device-id'?: string;
  'robot-type'?: string;
  label?: string;
  'created-from'?: string;
  'created-to'?: string;
  q?: string;
}

export interface BulkQaContext {
  gatewayUrl: string;
  token: string;
  out: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  err: NodeJS.WritableStream;
  /**
   * How `follow` shows progress: `bar`, one line redrawn in place; `lines`, a plain line per change (for logs).
   * Default: a bar on a terminal, lines otherwise.
   */
  progress?: 'bar' | 'lines';
  /** Backoff between reconnects of `follow` (tests shorten it). */
  backoffMs?: readonly number[];
}

/** The filters as the API takes them, from the command line's flags (validated by the contract). */
export function filtersFrom(flags: BulkQaFlags): BulkQaFilters {
  const raw = {
    ...(flags['qa-status'] ? { qa_status: flags['qa-status'].split(',').map((s) => s.trim()) } : {}),
    ...(flags['scene-id'] ? { scene_id: flags['scene-id'] } : {}),
    ...(flags['order-id'] ? { order_id: flags['order-id'] } : {}),
    ...(flags['device-id'] ? { device_id: flags['device-id'] } : {}),
    ...(flags['robot-type'] ? { robot_type: flags['robot-type'] } : {}),
    ...(flags.label ? { label: flags.label } : {}),
    ...(flags['created-from'] ? { created_from: flags['created-from'] } : {}),
    ...(flags['created-to'] ? { created_to: flags['created-to'] } : {}),
    ...(flags.q ? { q: flags.q } : {}),
  };
  const parsed = BulkQaFilters.safeParse(raw);
  if (!parsed.success) {
    const flag = (path: string) => `--${path.replace(/_/g, '-').replace('qa-status.0', 'qa-status')}`;
    throw new Error(
      parsed.error.issues.map((i) => `${flag(String(i.path[0] ?? ''))}: ${i.message}`).join('; ') || 'invalid filters',
    );
  }
  return parsed.data;
}

async function api<T>(
  ctx: BulkQaContext,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: T }> {
  const res = await fetch(new URL(`/api/v1${path}`, ctx.gatewayUrl), {
    method,
    headers: {
      authorization: `Bearer ${ctx.token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  const parsed = (text ? JSON.parse(text) : undefined) as T;
  return { status: res.status, body: parsed };
}

function problemText(status: number, body: unknown): string {
  const p = body as { code?: string; detail?: string; errors?: { path: string; message: string }[] } | undefined;
  const fields = p?.errors?.map((e) => `${e.path}: ${e.message}`).join('; ');
  return `HTTP ${status}${p?.code ? ` ${p.code}` : ''}: ${p?.detail ?? 'refused'}${fields ? ` (${fields})` : ''}`;
}

/**
 * The live page for a run, with no credential in it: output ends up in logs and scrollback, so the page asks for the
 * token itself (kept in the browser tab only).
 */
export function livePageUrl(ctx: Pick<BulkQaContext, 'gatewayUrl'>, runId: string): string {
  return new URL(`/ops/bulk-runs/${runId}`, ctx.gatewayUrl).toString();
}

const livePageLine = (ctx: BulkQaContext, runId: string) =>
  `live page: ${livePageUrl(ctx, runId)} (it asks for your token; paste the one you use here)\n`;

export async function bulkQaPreview(ctx: BulkQaContext, flags: BulkQaFlags): Promise<number> {
  const res = await api<BulkQaPreview>(ctx, 'POST', '/data-ops/bulk-qa', { filters: filtersFrom(flags) });
  if (res.status !== 200) {
    ctx.err.write(`ferry bulk-qa preview: ${problemText(res.status, res.body)}\n`);
    return 1;
  }
  const p = res.body;
  ctx.out.write(
    `matched ${p.matched_count} episodes; a run would check ${p.eligible_count}\n` +
      `  skipped: ${p.skipped.already_running} already running, ${p.skipped.protected_status} with a status a person set (checked, status kept)\n` +
      p.warnings.map((w) => `  warning: ${w}\n`).join(''),
  );
  return 0;
}

export async function bulkQaStart(
  ctx: BulkQaContext,
  flags: BulkQaFlags,
  options: { follow?: boolean },
): Promise<number> {
  const res = await api<BulkRun>(ctx, 'POST', '/data-ops/bulk-qa', { filters: filtersFrom(flags), confirm: true });
  if (res.status === 409) {
    const active = (res.body as unknown as { details?: { run_id?: string; status?: string } }).details;
    ctx.err.write(
      `ferry bulk-qa start: a run is already ${active?.status ?? 'active'}: ${active?.run_id}\n` +
        `  follow it: ferry bulk-qa follow ${active?.run_id}\n`,
    );
    return 1;
  }
  if (res.status !== 202) {
    ctx.err.write(`ferry bulk-qa start: ${problemText(res.status, res.body)}\n`);
    return 1;
  }
  const run = res.body;
  ctx.out.write(`started bulk QA run ${run.run_id} over ${run.total_count} episodes\n`);
  ctx.out.write(livePageLine(ctx, run.run_id));
  return options.follow ? bulkQaFollow(ctx, run.run_id, { printPage: false }) : 0;
}

export async function bulkQaCancel(ctx: BulkQaContext, runId: string): Promise<number> {
  const res = await api<BulkRun>(ctx, 'POST', `/data-ops/bulk-runs/${runId}/cancel`);
  if (res.status !== 200) {
    ctx.err.write(`ferry bulk-qa cancel: ${problemText(res.status, res.body)}\n`);
    return 1;
  }
  ctx.out.write(`cancel requested for ${runId} (status ${res.body.status})\n`);
  return 0;
}

const pct = (run: BulkRun) =>
  run.total_count > 0
    ? Math.floor((run.processed_count / run.total_count) * 100)
    : run.status === 'completed'
      ? 100
      : 0;

function counters(run: BulkRun): string {
  return (
    `passed ${run.passed_count} · qa failed ${run.qa_failed_count} · ` +
    `processing failed ${run.processing_failed_count} · skipped ${run.skipped_count}`
  );
}

/**
 * Draws progress: as a bar, one line redrawn in place (bar, processed/total, %, rate, counters); as lines, a plain
 * line per change, fit for logs.
 */
class ProgressView {
  private started = performance.now();
  private firstProcessed: number | undefined;
  private lastLine = '';
  private drawn = false;

  constructor(
    private readonly out: BulkQaContext['out'],
    private readonly mode: 'bar' | 'lines',
  ) {}

  show(run: BulkRun): void {
    this.firstProcessed ??= run.processed_count;
    const seconds = (performance.now() - this.started) / 1000;
    const rate = seconds > 0 ? (run.processed_count - this.firstProcessed) / seconds : 0;
    const summary = `${run.processed_count}/${run.total_count} ${pct(run)} % ${rate.toFixed(1)}/s  ${counters(run)}`;
    if (this.mode === 'bar') {
      const width = 24;
      const filled = Math.round((pct(run) / 100) * width);
      const line = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${summary}`;
      this.out.write(`\r\x1b[2K${line.slice(0, Math.max(20, (this.out.columns ?? 120) - 1))}`);
      this.drawn = true;
      return;
    }
    const line = `${run.status} ${summary}`;
    if (line.replace(/ [\d.]+\/s/, '') === this.lastLine.replace(/ [\d.]+\/s/, '')) return;
    this.lastLine = line;
    this.out.write(`${line}\n`);
  }

  note(text: string): void {
    if (this.drawn) this.out.write('\n');
    this.drawn = false;
    this.out.write(`${text}\n`);
  }

  end(): void {
    if (this.drawn) this.out.write('\n');
    this.drawn = false;
  }
}

export async function bulkQaFollow(
  ctx: BulkQaContext,
  runId: string,
  options: { printPage?: boolean } = {},
): Promise<number> {
  if (options.printPage ?? true) ctx.out.write(livePageLine(ctx, runId));
  const view = new ProgressView(ctx.out, ctx.progress ?? (ctx.out.isTTY ? 'bar' : 'lines'));
  let highest = -1;
  let run: BulkRun;
  try {
    run = await followBulkRun({
      baseUrl: ctx.gatewayUrl,
      token: ctx.token,
      runId,
      ...(ctx.backoffMs ? { backoffMs: ctx.backoffMs } : {}),
      onFrame: ({ run: next }) => {
        // Every frame is the whole run; a resumed stream may repeat an older one.
        if (next.version <= highest) return;
        highest = next.version;
        view.show(next);
      },
      onReconnect: ({ delayMs, lastEventId, reason }) =>
        view.note(
          `connection lost (${reason}); resuming after event ${lastEventId ?? '(none)'} in ${delayMs / 1000} s`,
        ),
    });
  } catch (err) {
    view.end();
    ctx.err.write(`ferry bulk-qa follow: ${err instanceof FollowError ? err.message : (err as Error).message}\n`);
    return 1;
  }
  view.end();
  ctx.out.write(
    `run ${run.run_id} ${run.status}: ${run.processed_count}/${run.total_count} processed; ${counters(run)}\n`,
  );
  if (run.error_message) ctx.out.write(`  error: ${run.error_message}\n`);
  const failures = Object.entries(run.failures_by_check).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  if (failures.length > 0) {
    ctx.out.write('failures by check:\n');
    for (const [check, n] of failures) ctx.out.write(`  ${check}  ${n}\n`);
  }
  return run.status === 'completed' ? 0 : 1;
}
