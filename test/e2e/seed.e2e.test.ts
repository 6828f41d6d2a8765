import { execFile } from 'node:child_process';
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
    await system.start(['production']);
  });
  afterAll(() => system?.shutdown());

  const seed = async (org: string) => {
    const { stdout } = await run(process.execPath, [CLI, 'seed', '--org', org, '--json'], {
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

    const again = await seed(org);
    for (const key of ['scene_id', 'order_id', 'workstation_id', 'batch_id']) expect(again[key]).toBe(first[key]);
    expect(again.task_ids.sort()).toEqual(first.task_ids.sort());
  });

  it('prints a readable summary with the tokens and a first command to try', async () => {
    const { stdout } = await run(process.execPath, [CLI, 'seed', '--org', uuidv7()], {
      env: { ...process.env, ...system.infra.env(), FERRY_JWT_SECRET: system.jwtSecret },
    });
    expect(stdout).toMatch(/Demo organization/);
    expect(stdout).toMatch(/operator {2}ey/);
    expect(stdout).toMatch(/curl .*\/api\/v1\/tasks\/[0-9a-f-]+\/start/s);
  });

  it('says what is missing when it cannot sign tokens', async () => {
    const err = await run(process.execPath, [CLI, 'seed'], {
      env: { ...process.env, ...system.infra.env(), FERRY_JWT_SECRET: '' },
    }).catch((e) => e);
    expect(err.code).toBe(1);
    expect(err.stderr).toMatch(/FERRY_JWT_SECRET/);
  });
});
