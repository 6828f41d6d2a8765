import { execFile, execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { demoRecording } from '@ferry/cli';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { System } from '../support/system.js';

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '../..');
const CLI = path.join(ROOT, 'packages/cli/dist/main.js');

/** The shell the walkthrough is written for; without one of these the test says so and is skipped (fails under CI, which sets FERRY_REQUIRE_TOOLS). */
const TOOLS = ['bash', 'curl', 'jq', 'sha256sum'];
const missing = TOOLS.filter((tool) => {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    return false;
  } catch {
    return true;
  }
});

/**
 * docs/devices.md is for people writing device software, who will paste its commands: every `sh` block,
 * in order, is one bash session, run here against a fresh system as `npm start -- --seed` leaves it.
 */
describe.skipIf(missing.length > 0 && !process.env.FERRY_REQUIRE_TOOLS)(
  `docs/devices.md walkthrough${missing.length ? ` (needs ${missing.join(', ')})` : ''}`,
  () => {
    let system: System;
    let cwd: string;
    beforeAll(async () => {
      system = await System.create();
      await system.start(['production', 'transfer', 'qa', 'gateway'], { env: { DEVICE_TOKEN_CACHE_TTL_MS: '0' } });
      cwd = mkdtempSync(path.join(tmpdir(), 'ferry-devices-doc-'));
    }, 120_000);
    afterAll(async () => {
      await system?.shutdown();
      if (cwd) rmSync(cwd, { recursive: true, force: true });
    });

    it('runs every sh block in order: register, pair, tasks, open, PUT, confirm, resume, complete, acknowledged, revoke', async () => {
      // What npm start -- --seed leaves: the demo org (its order), .data/demo-token, a demo recording.
      const org = uuidv7();
      await run(process.execPath, [CLI, 'seed', '--org', org], {
        env: { ...process.env, ...system.infra.env(), FERRY_JWT_SECRET: system.jwtSecret },
      });
      mkdirSync(path.join(cwd, '.data'));
      writeFileSync(path.join(cwd, '.data/demo-token'), `${await system.token(org, 'admin')}\n`);
      const recording = await demoRecording(path.join(cwd, '.data/demo-recordings'), 'walkthrough');
      copyFileSync(recording.mcap.path, path.join(cwd, 'rec.mcap'));
      copyFileSync(recording.sidecar.path, path.join(cwd, 'rec.json'));

      const doc = readFileSync(path.join(ROOT, 'docs/devices.md'), 'utf8');
      const blocks = [...doc.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
      expect(blocks.length).toBeGreaterThan(10);
      const script = [
        'set -euo pipefail',
        ...blocks.map(
          (b, i) => `echo "=== block ${i + 1}"\n${b.replaceAll('http://127.0.0.1:3000', system.gatewayUrl)}`,
        ),
        // After the session: the revoked token is refused (no cache in this system), the episode exists.
        'echo "=== after"',
        'curl -s -o /dev/null -w "revoked %{http_code}\\n" "$API/device/tasks" -H "Authorization: Bearer $DEVICE_TOKEN"',
        'echo "episode $(jq -r .episode_id upload.json)"',
      ].join('\n');
      const { stdout } = await run('bash', ['-c', script], { cwd, timeout: 60_000 });

      expect(stdout).toContain(`=== block ${blocks.length}`);
      expect(stdout).toMatch(/"status": "uploading"/);
      expect(stdout).toMatch(/^202$/m);
      expect(stdout).toMatch(/"status": "acknowledged"/);
      expect(stdout).toMatch(/^204$/m);
      expect(stdout).toMatch(/^revoked 401$/m);
      const episodeId = /^episode ([0-9a-f-]{36})$/m.exec(stdout)?.[1];
      const operator = system.client(await system.token(org, 'operator'));
      const episode = await operator('GET', `/episodes/${episodeId}`);
      expect(episode.status).toBe(200);
      expect(episode.body).toMatchObject({ device_id: 'arm-0042', files: { mcap: { sha256: recording.mcap.sha256 } } });
    });
  },
);
