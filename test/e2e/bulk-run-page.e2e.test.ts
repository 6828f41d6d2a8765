import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { waitFor } from '@ferry/platform/testing';
import { type Browser, chromium } from 'playwright-core';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeQaBulkRuns } from '../support/fake-qa-bulk-runs.js';
import { System } from '../support/system.js';

const CHROMIUM = '/usr/bin/chromium';
const present = existsSync(CHROMIUM);
/** CI sets FERRY_REQUIRE_TOOLS: there a missing browser fails the test instead of skipping it. */
const required = Boolean(process.env.FERRY_REQUIRE_TOOLS);
if (!present)
  console.log(
    `bulk-run-page: ${CHROMIUM} is not installed (apt-get install chromium); ${required ? 'failing' : 'skipping'} the browser test`,
  );

/**
 * The live page in a real headless Chromium, following a run the test drives (QA's side is
 * FakeQaBulkRuns; the QA service's own end-to-end tests come with it).
 */
describe.skipIf(!present && !required)('the bulk run live page', () => {
  let system: System;
  let qa: FakeQaBulkRuns;
  let browser: Browser;
  const org = uuidv7();
  const env = { SSE_HEARTBEAT_MS: '1000' };

  beforeAll(async () => {
    system = await System.create();
    await system.start(['gateway'], { env });
    qa = new FakeQaBulkRuns(system);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    });
  }, 120_000);
  afterAll(async () => {
    await browser?.close();
    await qa?.stop();
    await system?.shutdown();
  });

  it('shows progress to 100 % and the terminal state, reconnecting by itself when its stream is cut', async () => {
    const token = await system.token(org, 'viewer');
    const run = qa.create(org, { total_count: 10 });
    const page = await browser.newPage();
    const eventUrls: string[] = [];
    page.on('request', (req) => {
      if (/\/events(\?|$)/.test(req.url())) eventUrls.push(req.url());
    });
    const response = await page.goto(`${system.gatewayUrl}/ops/bulk-runs/${run.run_id}#token=${token}`);
    expect(response!.headers()['content-security-policy']).toContain("script-src 'self'");
    const text = (selector: string) => page.locator(selector).textContent();
    await page.locator('#connection[data-state="open"]').waitFor({ timeout: 10_000 });
    // The token left the address bar; the stream was opened with a ticket, never the token.
    expect(page.url()).not.toContain('token=');
    expect(eventUrls[0]).toMatch(/\/events\?ticket=fet_/);
    expect(eventUrls.join(' ')).not.toContain(token);

    // Nothing has failed yet: the table says so rather than standing empty.
    await waitFor(async () => (await page.locator('#failures tbody tr.none').count()) === 1, {
      what: 'no failures yet',
    });
    expect(await text('#failures tbody')).toBe('No check has failed so far.');
    for (let i = 0; i < 4; i++) await qa.step(run.run_id, i === 1 ? { failed: 'mcap_integrity@1' } : {});
    await waitFor(async () => (await text('#percent')) === '40 %', { what: '40 %' });
    expect(await text('#qa_failed_count')).toBe('1');

    // Cut the page's stream: the gateway stops and comes back on the same port while the run goes on.
    const port = system.processes.get('gateway')!.port;
    await system.stop('gateway');
    for (let i = 0; i < 3; i++) await qa.step(run.run_id);
    await system.start(['gateway'], { env: { ...env, PORT: String(port) } });
    await waitFor(
      () =>
        page
          .locator('#connection')
          .evaluate((el) => el.dataset.state === 'open' && Number(el.dataset.connections) >= 2),
      { timeoutMs: 30_000, what: 'the page to reconnect' },
    );
    // Resumed after its last id (no repeat from the start).
    expect(eventUrls.at(-1)).toMatch(/last_event_id=\d+/);

    for (let i = 0; i < 3; i++) await qa.step(run.run_id, { failed: 'empty_recording@1' });
    await qa.finish(run.run_id, 'completed');
    await page.locator('#terminal:not([hidden])').waitFor({ timeout: 10_000 });
    expect(await text('#terminal')).toBe('Completed');
    expect(await text('#percent')).toBe('100 %');
    expect(await page.locator('#progress').evaluate((el) => (el as unknown as { value: number }).value)).toBe(1);
    expect(await text('#processed_count')).toBe('10');
    expect(await text('#passed_count')).toBe('6');
    expect(await text('#qa_failed_count')).toBe('4');
    expect(await page.locator('#failures tbody tr').allTextContents()).toEqual([
      'empty_recording@13',
      'mcap_integrity@11',
    ]);
    expect(await page.locator('#connection').getAttribute('data-state')).toBe('closed');
    await page.screenshot({ path: path.join(tmpdir(), 'ferry-bulk-run-page.png'), fullPage: true });
    await page.close();
  });

  it('asks for a token when the page has none, and says when the run does not exist', async () => {
    const page = await browser.newPage();
    await page.goto(`${system.gatewayUrl}/ops/bulk-runs/${uuidv7()}`);
    await page.locator('#token-form:not([hidden])').waitFor();
    await page.fill('#token', await system.token(org, 'operator'));
    await page.click('#token-form button');
    await page.locator('#error:not([hidden])').waitFor();
    expect(await page.locator('#error').textContent()).toBe('No such run in your organization.');
    await page.close();
  });
});
