import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { System } from '../support/system.js';

const run = promisify(execFile);
const CLI = path.resolve(import.meta.dirname, '../../packages/cli/dist/main.js');

/** `ferry device …` run as a user runs it, against transfer and the gateway as real processes. */
describe('ferry device', () => {
  let system: System;
  beforeAll(async () => {
    system = await System.create();
    // No cache: a revoked token is refused at once, so the test sees revocation without waiting.
    await system.start(['transfer', 'gateway'], { env: { DEVICE_TOKEN_CACHE_TTL_MS: '0' } });
  }, 120_000);
  afterAll(() => system?.shutdown());

  const ferry = async (...args: string[]) => {
    const result = await run(process.execPath, [CLI, ...args], { env: { ...process.env, ...system.infra.env() } }).then(
      ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
      (err: { code: number; stdout: string; stderr: string }) => ({
        code: err.code,
        stdout: err.stdout,
        stderr: err.stderr,
      }),
    );
    return result;
  };
  /** A request to the gateway with a device token: its status. */
  const asDevice = async (token: string) =>
    (await fetch(`${system.gatewayUrl}/api/v1/uploads`, { headers: { authorization: `Bearer ${token}` } })).status;

  it('registers a device, pairs it (pairing token → device token), lists it and revokes its tokens', async () => {
    const org = uuidv7();
    const added = await ferry(
      'device',
      'add',
      '--org',
      org,
      '--device-id',
      'arm-0042',
      '--robot-type',
      'arm-v2',
      '--topics',
      '/camera,/joints',
    );
    expect(added).toMatchObject({ code: 0 });
    expect(added.stdout).toMatch(/registered device arm-0042 {2}\(id [0-9a-f-]{36}\)/);
    expect(added.stdout).toMatch(/topics +\/camera, \/joints/);

    // pair prints only the pairing token on stdout; the device exchanges it over HTTP with no other credential.
    const paired = await ferry('device', 'pair', '--org', org, '--device', 'arm-0042');
    expect(paired.code).toBe(0);
    expect(paired.stdout.trim()).toMatch(/^fpt_[A-Za-z0-9_-]+$/);
    expect(paired.stderr).toMatch(/single use, expires/);
    const redeemed = await fetch(`${system.gatewayUrl}/api/v1/device-tokens`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ pairing_token: paired.stdout.trim() }),
    });
    expect(redeemed.status).toBe(201);
    const viaHttp = ((await redeemed.json()) as { token: string }).token;
    expect(await asDevice(viaHttp)).toBe(200);

    // --redeem does both at once and prints only the device token.
    const direct = await ferry('device', 'pair', '--org', org, '--device', 'arm-0042', '--redeem', '--label', 'bench');
    expect(direct.code).toBe(0);
    const viaCli = direct.stdout.trim();
    expect(viaCli).toMatch(/^fdt_[A-Za-z0-9_-]+$/);
    expect(direct.stderr).toMatch(/shown once/);
    expect(await asDevice(viaCli)).toBe(200);

    const listed = await ferry('device', 'list', '--org', org);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(
      /^arm-0042 {2}id [0-9a-f-]{36} {2}robot arm-v2 {2}topics \/camera,\/joints {2}tokens 2 live \/ 2$/m,
    );
    expect(listed.stdout).toMatch(/\(bench\)/);
    const json = JSON.parse((await ferry('device', 'list', '--org', org, '--json')).stdout);
    const benchToken = json[0].tokens.find((t: { label: string | null }) => t.label === 'bench');

    // One token by id: that one stops working, the other does not.
    const one = await ferry('device', 'revoke', '--org', org, '--device', 'arm-0042', '--token', benchToken.id);
    expect(one.code).toBe(0);
    expect(one.stdout).toContain(`revoked token ${benchToken.id} of arm-0042`);
    expect(await asDevice(viaCli)).toBe(401);
    expect(await asDevice(viaHttp)).toBe(200);

    // Neither --token nor --all: nothing is revoked, and the live tokens are named.
    const which = await ferry('device', 'revoke', '--org', org, '--device', json[0].id);
    expect(which.code).toBe(2);
    expect(which.stderr).toMatch(
      /^ferry: say which token of arm-0042 to revoke: --token TOKEN_ID or --all \(live tokens: [0-9a-f-]{36}\)\n$/,
    );
    expect(await asDevice(viaHttp)).toBe(200);

    const all = await ferry('device', 'revoke', '--org', org, '--device', 'arm-0042', '--all');
    expect(all.code).toBe(0);
    expect(all.stdout).toMatch(/revoked token [0-9a-f-]{36} of arm-0042/);
    expect(await asDevice(viaHttp)).toBe(401);
    expect((await ferry('device', 'list', '--org', org)).stdout).toMatch(/tokens 0 live \/ 2/);
  });

  it('answers mistakes with one line and exit code 1 (2 for usage)', async () => {
    const org = uuidv7();
    expect((await ferry('device', 'add', '--org', org, '--device-id', 'arm-1')).code).toBe(0);

    const taken = await ferry('device', 'add', '--org', org, '--device-id', 'arm-1');
    expect(taken).toMatchObject({ code: 1, stdout: '' });
    expect(taken.stderr).toBe(
      `ferry: device arm-1 is already registered in organization ${org} (ferry device list --org ${org})\n`,
    );

    const unknown = await ferry('device', 'pair', '--org', org, '--device', 'arm-404');
    expect(unknown).toMatchObject({ code: 1, stdout: '' });
    expect(unknown.stderr).toBe(`ferry: no device arm-404 in organization ${org} (ferry device list --org ${org})\n`);

    const noToken = await ferry('device', 'revoke', '--org', org, '--device', 'arm-1', '--token', uuidv7());
    expect(noToken.code).toBe(1);
    expect(noToken.stderr).toMatch(/^ferry: device arm-1 has no token [0-9a-f-]{36}\n$/);

    const badTopic = await ferry('device', 'add', '--org', org, '--device-id', 'arm-2', '--topics', '/ok,bad topic');
    expect(badTopic.code).toBe(2);
    expect(badTopic.stderr).toBe('ferry: --topics (topic 2): a topic name like /camera/image_raw\n');

    const badOrg = await ferry('device', 'list', '--org', 'acme');
    expect(badOrg).toMatchObject({ code: 2, stderr: 'ferry: --org must be the organization id (a UUID)\n' });

    // Another organization sees nothing of this one.
    expect((await ferry('device', 'list', '--org', uuidv7())).stdout).toMatch(/^no devices/);
  });

  it('says at once when it cannot reach NATS', async () => {
    const result = await run(process.execPath, [CLI, 'device', 'list', '--org', uuidv7()], {
      env: { ...process.env, ...system.infra.env(), NATS_URL: 'nats://127.0.0.1:1' },
    }).catch((e) => e);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /^ferry: cannot reach NATS at nats:\/\/127\.0\.0\.1:1 \(.*\): is the system running\? \(npm start\)\n$/,
    );
  });
});
