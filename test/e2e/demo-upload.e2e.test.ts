import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '@ferry/platform/testing';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { System } from '../support/system.js';

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '../..');
const CLI = path.join(ROOT, 'packages/cli/dist/main.js');
const SCRIPT = path.join(ROOT, 'scripts/demo-upload.mjs');

/** A port nothing listens on (one the OS just handed out and took back). */
/** What a new user does after `npm start -- --seed`: `npm run demo:upload`, against the four services. */
describe('npm run demo:upload', () => {
  let system: System;
  let dataDir: string;
  beforeAll(async () => {
    system = await System.create();
    await system.start(['production', 'transfer', 'qa', 'gateway']);
    dataDir = mkdtempSync(path.join(tmpdir(), 'ferry-demo-'));
  }, 120_000);
  afterAll(async () => {
    await system?.shutdown();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  const demoUpload = (env: Record<string, string>, ...args: string[]) =>
    run(process.execPath, [SCRIPT, ...args], { env: { ...process.env, ...env } }).then(
      ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
      (err: { code: number; stdout: string; stderr: string }) => ({
        code: err.code,
        stdout: err.stdout,
        stderr: err.stderr,
      }),
    );

  it('says exactly what to run first when the seed has not left a demo device', async () => {
    const empty = mkdtempSync(path.join(tmpdir(), 'ferry-demo-empty-'));
    try {
      const result = await demoUpload({ FERRY_DATA_DIR: empty });
      expect(result.code).toBe(1);
      expect(result.stderr).toBe(
        `ferry: no demo device in ${empty}: start the system with \`npm start -- --seed\` first (it registers ` +
          'demo-arm-01 and writes demo-device.json there), then run `npm run demo:upload` in another terminal ' +
          '(or pass --gateway-url URL --token fdt_…)\n',
      );
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });

  it('records and uploads a demo MCAP as the seeded device and prints the episode it became', async () => {
    const org = uuidv7();
    await run(
      process.execPath,
      [CLI, 'seed', '--org', org, '--gateway-url', system.gatewayUrl, '--data-dir', dataDir],
      { env: { ...process.env, ...system.infra.env(), FERRY_JWT_SECRET: system.jwtSecret } },
    );
    const result = await demoUpload({ FERRY_DATA_DIR: dataDir });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const out = result.stdout;
    const taskId = /^task ([0-9a-f-]{36}) \(pending, group pick-cup-(left|right)\)$/m.exec(out)?.[1];
    expect(taskId).toBeDefined();
    expect(out).toMatch(/^ {2}started recording +POST \/tasks\/\{id\}\/start → in_progress$/m);
    expect(out).toMatch(
      /^ {2}recorded {2}.*\.mcap {2}\(\d+ bytes, 375 messages on \/camera, \/joints over 5\.0 s; sidecar \d+ bytes\)$/m,
    );
    expect(out).toMatch(/^ {2}finished recording +POST \/tasks\/\{id\}\/finish → uploading$/m);
    expect(out).toMatch(/^ {2}opened upload [0-9a-f-]{36} +POST \/uploads → 201, 2 part\(s\)/m);
    // Not a terminal: plain progress lines, the last at 100%.
    expect(out).toMatch(/^ {2}upload \d+\.\d+ \/ \d+\.\d+ MB \(100%\), [\d.]+ MB\/s$/m);
    expect(out).toMatch(/^ {2}completed +POST \/uploads\/\{id\}\/complete → 202 verifying$/m);
    const episodeId = /^Episode ([0-9a-f-]{36})$/m.exec(out)?.[1];
    expect(episodeId).toBeDefined();
    expect(out).toContain(`  task     ${taskId}`);
    expect(out).toMatch(/^ {2}mcap +\S+\.mcap {2}\d+ bytes {2}sha256 [0-9a-f]{64}$/m);
    expect(out).toMatch(/^ {2}sidecar +\S+\.json {2}\d+ bytes {2}sha256 [0-9a-f]{64}$/m);
    expect(out).toMatch(/^ {2}recording 4\.983 s, 375 messages, topics \/camera, \/joints$/m);

    // The episode exists for the operator, from that task and device, and the task is completed.
    const operator = system.client(await system.token(org, 'operator'));
    const episode = await operator('GET', `/episodes/${episodeId}`);
    expect(episode.status).toBe(200);
    expect(episode.body).toMatchObject({ task_id: taskId, device_id: 'demo-arm-01' });
    expect((await operator('GET', `/tasks/${taskId}`)).body.status).toBe('completed');

    // Running it again takes the next task.
    const again = await demoUpload({ FERRY_DATA_DIR: dataDir });
    expect(again.code).toBe(0);
    const nextTask = /^task ([0-9a-f-]{36})/m.exec(again.stdout)?.[1];
    expect(nextTask).not.toBe(taskId);
    expect(again.stdout).toMatch(/^Episode [0-9a-f-]{36}$/m);
  });

  it('explains a revoked device token and an unreachable gateway in one line', async () => {
    const token = `fdt_${'x'.repeat(40)}`;
    const refused = await demoUpload({}, '--gateway-url', system.gatewayUrl, '--token', token);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toBe(
      'ferry: the gateway refused the device token (from --token): it was revoked, or the database was reset; ' +
        'run `npm start -- --seed` again for a new one\n',
    );

    const port = await freePort(); // nothing listens there
    const down = await demoUpload({}, '--gateway-url', `http://127.0.0.1:${port}`, '--token', token);
    expect(down.code).toBe(1);
    expect(down.stderr).toBe(
      `ferry: nothing answers at http://127.0.0.1:${port} (ECONNREFUSED; the URL is from --gateway-url): is \`npm start\` running?\n`,
    );
  });
});
