import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { verifyAccessToken } from '@ferry/platform';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { System } from '../support/system.js';

const run = promisify(execFile);
const CLI = path.resolve(import.meta.dirname, '../../packages/cli/dist/main.js');

describe('ferry seed', () => {
  let system: System;
  beforeAll(async () => {
    system = await System.create();
    await system.start(['production', 'transfer']);
  });
  afterAll(() => system?.shutdown());

  const seed = async (org: string, ...extra: string[]) => {
    const { stdout } = await run(process.execPath, [CLI, 'seed', '--org', org, '--json', ...extra], {
      env: { ...process.env, ...system.infra.env(), FERRY_JWT_SECRET: system.jwtSecret },
    });
    return JSON.parse(stdout);
  };

  it('creates a ready-to-use demo organization, and running it again reuses everything', async () => {
    const org = uuidv7();
    const first = await seed(org);
    expect(first).toMatchObject({ org, device_id: 'demo-arm-01' });
    expect(first.task_ids).toHaveLength(10);
    const claims = await verifyAccessToken(first.tokens.operator, system.jwtSecret);
    expect(claims).toMatchObject({ org, role: 'operator' });

    // The demo device is registered in transfer and paired: a device token, shown in the JSON.
    expect(first.device).toMatchObject({ device_id: 'demo-arm-01', token: expect.stringMatching(/^fdt_/) });

    const again = await seed(org);
    for (const key of ['scene_id', 'order_id', 'workstation_id', 'batch_id']) expect(again[key]).toBe(first[key]);
    expect(again.task_ids.sort()).toEqual(first.task_ids.sort());
    // The same device, paired again: a new token (the old one is kept only as a hash, so it cannot be shown again).
    expect(again.device.id).toBe(first.device.id);
    expect(again.device.token).not.toBe(first.device.token);
    const { stdout: devices } = await run(process.execPath, [CLI, 'device', 'list', '--org', org], {
      env: { ...process.env, ...system.infra.env() },
    });
    expect(devices).toMatch(
      /^demo-arm-01 {2}id .* {2}robot demo-arm {2}topics \/camera,\/joints {2}tokens 2 live \/ 2$/m,
    );
  });

  it('leaves the demo device’s token and the gateway URL for npm run demo:upload with --data-dir', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ferry-seed-'));
    try {
      const org = uuidv7();
      const result = await seed(org, '--data-dir', dir, '--gateway-url', 'http://127.0.0.1:39999');
      const file = path.join(dir, 'demo-device.json');
      expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual({
        gateway_url: 'http://127.0.0.1:39999',
        org,
        device_id: 'demo-arm-01',
        device_token: result.device.token,
        token_id: result.device.token_id,
      });
      expect(statSync(file).mode & 0o777).toBe(0o600);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('prints a readable summary with the tokens and a first command to try', async () => {
    const { stdout } = await run(process.execPath, [CLI, 'seed', '--org', uuidv7()], {
      env: { ...process.env, ...system.infra.env(), FERRY_JWT_SECRET: system.jwtSecret },
    });
    expect(stdout).toMatch(/Demo organization/);
    expect(stdout).toMatch(/operator {2}ey/);
    expect(stdout).toMatch(/curl .*\/api\/v1\/tasks\/[0-9a-f-]+\/start/s);
    expect(stdout).toMatch(/device +[0-9a-f-]{36} {2}\(demo-arm-01, registered and paired\)/);
    expect(stdout).toMatch(/^ {2}fdt_[A-Za-z0-9_-]+$/m);
    // Without --data-dir the upload command carries what it needs.
    expect(stdout).toMatch(/^ {2}npm run demo:upload -- --gateway-url http:\/\/127\.0\.0\.1:3000 --token fdt_\S+$/m);
  });

  it('says what is missing when it cannot sign tokens', async () => {
    const err = await run(process.execPath, [CLI, 'seed'], {
      env: { ...process.env, ...system.infra.env(), FERRY_JWT_SECRET: '' },
    }).catch((e) => e);
    expect(err.code).toBe(1);
    expect(err.stderr).toMatch(/FERRY_JWT_SECRET/);
  });
});
