import { readFileSync } from 'node:fs';
import { Uuid } from '@ferry/contracts';
import type { Hono } from 'hono';

/**
 * Pages for people, served by the gateway itself: no build step, no CDN, assets from this package's
 * public/ folder (beside src/ and dist/, so the same path works from either). The pages hold no data:
 * they call the API with the user's token like any other client.
 */
const PUBLIC = new URL('../../public/ops/', import.meta.url);

const ASSETS: Record<string, string> = {
  'bulk-run.js': 'text/javascript; charset=utf-8',
  'bulk-run.css': 'text/css; charset=utf-8',
};

/** Read once at startup: a missing asset fails the boot, not a user's page load. */
const assets = new Map(Object.keys(ASSETS).map((file) => [file, readFileSync(new URL(file, PUBLIC))]));

export const OPS_PAGE_PATHS = ['/ops/bulk-runs/:id', '/ops/assets/:file'] as const;

// No inline script or style, no third party; the page only talks to this origin. no-referrer keeps the
// page's URL (whose fragment may hold a token) out of any request it makes.
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);

function bulkRunPage(runId: string): string {
  const id = escapeHtml(runId);
  return `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Bulk QA run ${id} · Ferry</title>
  <link rel="stylesheet" href="/ops/assets/bulk-run.css">
</head>
<body data-run-id="${id}">
  <main>
    <h1>Bulk QA run <code>${id}</code></h1>
    <p id="connection" class="connection" data-state="idle" data-connections="0">Not connected</p>
    <form id="token-form" hidden>
      <label>Bearer token <input id="token" type="password" autocomplete="off" required></label>
      <button type="submit">Follow</button>
      <small>Kept in this tab only (sessionStorage). Or open this page with <code>#token=…</code>.</small>
    </form>
    <section id="run" hidden>
      <p><span id="status" class="status">…</span> <span id="percent">0 %</span></p>
      <progress id="progress" max="1" value="0"></progress>
      <dl class="counters">
        <div><dt>Total</dt><dd id="total_count">0</dd></div>
        <div><dt>Processed</dt><dd id="processed_count">0</dd></div>
        <div><dt>Passed</dt><dd id="passed_count">0</dd></div>
        <div><dt>QA failed</dt><dd id="qa_failed_count">0</dd></div>
        <div><dt>Processing failed</dt><dd id="processing_failed_count">0</dd></div>
        <div><dt>Skipped</dt><dd id="skipped_count">0</dd></div>
      </dl>
      <h2>Failures by check</h2>
      <table id="failures"><thead><tr><th>Check</th><th>Episodes</th></tr></thead><tbody></tbody></table>
      <p id="terminal" class="terminal" hidden></p>
    </section>
    <p id="error" class="error" hidden></p>
  </main>
  <script src="/ops/assets/bulk-run.js"></script>
</body>
</html>`;
}

export function mountOpsPages(app: Hono): void {
  app.get('/ops/bulk-runs/:id', (c) => {
    const id = c.req.param('id');
    if (!Uuid.safeParse(id).success) return c.notFound();
    c.header('Content-Security-Policy', CSP);
    c.header('Referrer-Policy', 'no-referrer');
    c.header('Cache-Control', 'no-store');
    return c.html(bulkRunPage(id));
  });
  app.get('/ops/assets/:file', (c) => {
    const file = c.req.param('file');
    const data = assets.get(file);
    if (!data) return c.notFound();
    return c.body(new Uint8Array(data), 200, { 'content-type': ASSETS[file]!, 'cache-control': 'no-cache' });
  });
}
