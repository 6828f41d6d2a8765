import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { Writable } from 'node:stream';
import { bulkQaFollow } from '@ferry/cli';
import { waitFor } from '@ferry/platform/testing';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { FakeQaBulkRuns } from '../support/fake-qa-bulk-runs.js';
import { System } from '../support/system.js';

const CLI = path.resolve(import.meta.dirname, '../../packages/cli/dist/main.js');

/** Every CLI process started, so a failed test leaves none running (afterEach kills what is left). */
const children = new Set<ChildProcess>();

/** Runs the built `ferry` CLI; resolves with its exit code and output once it exits. */
function ferry(args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => {
    stdout += d;
  });
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) =>
    child.on('exit', (code) => resolve({ code, stdout, stderr })),
  );
  return { done, output: () => stdout };
}

/**
 * `ferry bulk-qa` against a real gateway; QA's side is FakeQaBulkRuns, which answers as QA does and lets the test
 * drive the run (the QA service itself is tested end to end in bulk-qa.e2e and bulk-qa-live.e2e).
 */
describe('ferry bulk-qa', () => {
  let system: System;
  let qa: FakeQaBulkRuns;
  let gatewayUrl: string;
  const env = { SSE_HEARTBEAT_MS: '1000' };

  /**
   * An operator of an organization of its own, for one test: QA allows one active run per organization, so a run
   * another test left behind can neither block this one nor be taken for its run.
   */
  async function operator(): Promise<{ org: string; token: string }> {
    const org = uuidv7();
    return { org, token: await system.token(org, 'operator') };
  }

  beforeAll(async () => {
    system = await System.create();
    await system.start(['gateway'], { env });
    qa = new FakeQaBulkRuns(system);
    gatewayUrl = system.gatewayUrl;
  }, 120_000);
  afterEach(() => {
    for (const child of children) child.kill('SIGKILL');
  });
  afterAll(async () => {
    await qa?.stop();
    await system?.shutdown();
  });

  it('previews with filters given as flags', async () => {
    const { token } = await operator();
    const sceneId = uuidv7();
    const { code, stdout } = await ferry(
      ['bulk-qa', 'preview', '--qa-status', 'failed,pending_qa', '--scene-id', sceneId, '--gateway-url', gatewayUrl],
      { FERRY_TOKEN: token },
    ).done;
    expect(code).toBe(0);
    // The flags reached QA as filters, and QA's counts came back to the terminal.
    expect(qa.previews.at(-1)).toEqual({ qa_status: ['failed', 'pending_qa'], scene_id: sceneId });
    expect(stdout).toContain('matched 12 episodes; a run would check 10');
  });

  it('names a bad filter flag and sends nothing', async () => {
    const { token } = await operator();
    const asked = qa.previews.length;
    const { code, stderr } = await ferry(['bulk-qa', 'preview', '--qa-status', 'nope', '--gateway-url', gatewayUrl], {
      FERRY_TOKEN: token,
    }).done;
    expect(code).toBe(1);
    expect(stderr).toContain('--qa-status');
    expect(qa.previews).toHaveLength(asked);
  });

  it('starts a run, prints its live page without the token, follows it to completion and exits 0', async () => {
    const { org, token } = await operator();
    const cli = ferry(['bulk-qa', 'start', '--follow', '--gateway-url', gatewayUrl, '--token', token]);
    const run = await waitFor(() => [...qa.runs.values()].find((r) => r.organization_id === org), {
      timeoutMs: 30_000,
    });
    await waitFor(() => cli.output().includes('queued 0/10'), { what: 'the snapshot line', timeoutMs: 30_000 });
    await qa.step(run.run_id);
    await qa.step(run.run_id, { failed: 'mcap_integrity@1' });
    await qa.step(run.run_id, { failed: 'mcap_integrity@1' });
    await qa.step(run.run_id, { failed: 'empty_recording@1' });
    await qa.finish(run.run_id, 'completed');
    const { code, stdout, stderr } = await cli.done;
    expect(code).toBe(0);
    expect(stdout).toContain(`started bulk QA run ${run.run_id} over 10 episodes`);
    expect(stdout).toContain(`live page: ${gatewayUrl}/ops/bulk-runs/${run.run_id} (it asks for your token;`);
    // No credential on the terminal (or in the logs it is piped to).
    expect(stdout + stderr).not.toContain(token);
    expect(stdout).toMatch(
      /^running 4\/10 40 % [\d.]+\/s {2}passed 1 · qa failed 3 · processing failed 0 · skipped 0$/m,
    );
    expect(stdout).toContain(`run ${run.run_id} completed: 4/10 processed`);
    expect(stdout).toContain('failures by check:\n  mcap_integrity@1  2\n  empty_recording@1  1\n');
  });

  it('refuses a second start naming the active run, and cancels it: QA gets the cancel and the run ends cancelled', async () => {
    const { org, token } = await operator();
    const blocker = qa.create(org);
    const again = await ferry(['bulk-qa', 'start', '--gateway-url', gatewayUrl, '--token', token]).done;
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(`a run is already queued: ${blocker.run_id}`);
    const cancel = await ferry(['bulk-qa', 'cancel', blocker.run_id, '--gateway-url', gatewayUrl, '--token', token])
      .done;
    expect(cancel.code).toBe(0);
    // Nothing of a queued run is being checked: QA ends it at once.
    expect(cancel.stdout).toBe(`cancel requested for ${blocker.run_id} (status cancelled)\n`);
    expect(qa.runs.get(blocker.run_id)).toMatchObject({ status: 'cancelled', cancel_requested_at: expect.any(String) });
    // A running one keeps running until its checks in flight end; the command says so.
    const running = qa.create(org, { status: 'running' });
    const pending = await ferry(['bulk-qa', 'cancel', running.run_id, '--gateway-url', gatewayUrl, '--token', token])
      .done;
    expect(pending).toMatchObject({ code: 0, stdout: `cancel requested for ${running.run_id} (status running)\n` });
    expect(qa.runs.get(running.run_id)).toMatchObject({ status: 'running', cancel_requested_at: expect.any(String) });
    await qa.finish(running.run_id, 'cancelled');
  });

  it('resumes after the gateway restarts, misses nothing, and exits non-zero when the run failed', async () => {
    const { org, token } = await operator();
    const run = qa.create(org, { status: 'running', total_count: 8 });
    const cli = ferry(['bulk-qa', 'follow', run.run_id, '--gateway-url', gatewayUrl, '--token', token]);
    await waitFor(() => cli.output().includes('running 0/8'), { what: 'the snapshot line', timeoutMs: 30_000 });
    for (let i = 0; i < 3; i++) await qa.step(run.run_id);
    await waitFor(() => cli.output().includes('running 3/8'));
    // The gateway goes away (its streams end) and comes back on the same port; events go on meanwhile.
    const port = system.processes.get('gateway')!.port;
    await system.stop('gateway');
    for (let i = 0; i < 3; i++) await qa.step(run.run_id);
    await system.start(['gateway'], { env: { ...env, PORT: String(port) } });
    for (let i = 0; i < 2; i++) await qa.step(run.run_id, { failed: 'topic_rate@1' });
    await qa.finish(run.run_id, 'failed');
    const { code, stdout } = await cli.done;
    expect(code).toBe(1);
    expect(stdout).toMatch(/connection lost \(.+\); resuming after event \d+/);
    // Every step shows up once, in order.
    const seen = [...stdout.matchAll(/^running (\d)\/8/gm)].map((m) => Number(m[1]));
    expect(seen).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
    expect(stdout).toContain(`run ${run.run_id} failed: 8/8 processed`);
    expect(stdout).toContain('failures by check:\n  topic_rate@1  2\n');
  });

  it('draws a progress bar on a terminal', async () => {
    const { org, token } = await operator();
    const run = qa.create(org, { total_count: 4 });
    let text = '';
    const out = Object.assign(
      new Writable({
        write(chunk, _enc, cb) {
          text += chunk;
          cb();
        },
      }),
      { isTTY: true, columns: 160 },
    );
    const following = bulkQaFollow({ gatewayUrl: system.gatewayUrl, token, out, err: out }, run.run_id);
    await waitFor(() => text.includes('0/4'));
    await qa.step(run.run_id);
    await qa.step(run.run_id);
    await qa.finish(run.run_id, 'completed');
    expect(await following).toBe(0);
    expect(text).toContain('\r\x1b[2K[############............] 2/4 50 %');
  });

  it('draws the bar with --progress bar where stdout is no terminal', async () => {
    const { org, token } = await operator();
    const run = qa.create(org, { total_count: 4 });
    const cli = ferry(['bulk-qa', 'follow', run.run_id, '--progress', 'bar', '--gateway-url', gatewayUrl], {
      FERRY_TOKEN: token,
    });
    await waitFor(() => cli.output().includes('0/4'), { what: 'the first bar', timeoutMs: 30_000 });
    for (let i = 0; i < 3; i++) await qa.step(run.run_id);
    await qa.finish(run.run_id, 'completed');
    const { code, stdout } = await cli.done;
    expect(code).toBe(0);
    expect(stdout).toContain('\r\x1b[2K[........................] 0/4 0 %');
    expect(stdout).toContain('\r\x1b[2K[##################......] 3/4 75 %');
    expect(stdout).not.toMatch(/^queued 0\/4/m); // no plain lines
    expect(stdout).toContain(`run ${run.run_id} completed: 3/4 processed`);
  });

  it('refuses a --progress it does not know', async () => {
    const { token } = await operator();
    const { code, stderr } = await ferry(['bulk-qa', 'follow', uuidv7(), '--progress', 'fancy'], { FERRY_TOKEN: token })
      .done;
    expect(code).toBe(2);
    expect(stderr).toContain('--progress must be bar or lines');
  });
});
