import { CreateDeviceBody, type Device, deviceRpc, type RpcReply } from '@ferry/contracts';
import { DomainError } from '@ferry/platform';
import { z } from 'zod';
import { CliError } from '../cli-error.js';
import { type AdminRpc, withAdminRpc } from './admin-rpc.js';
import type { Env } from './setup.js';

/** `ferry device …`: an admin of an organization managing its devices over NATS (transfer's deviceRpc). */

type PairingToken = RpcReply<typeof deviceRpc.createPairingToken>;
type IssuedDeviceToken = RpcReply<typeof deviceRpc.redeemPairingToken>;
type DeviceTokenInfo = RpcReply<typeof deviceRpc.revokeToken>;

const OrgId = z.uuid();

function orgOf(org: string | undefined): string {
  const parsed = OrgId.safeParse(org);
  if (!parsed.success) throw new CliError('--org must be the organization id (a UUID)', { exitCode: 2 });
  return parsed.data;
}

function required(value: string | undefined, flag: string): string {
  if (!value) throw new CliError(`${flag} is required`, { exitCode: 2 });
  return value;
}

/**
 * The device named on the command line: its id (a UUID, as the API shows it) or its `device_id`
 * (`demo-arm-01`, as the robot calls itself).
 */
async function resolveDevice(rpc: AdminRpc, device: string): Promise<Device> {
  if (z.uuid().safeParse(device).success) {
    try {
      return await rpc.call(deviceRpc.get, { id: device });
    } catch (err) {
      if (!(err instanceof DomainError && err.code === 'not_found')) throw err;
      // a device_id may look like a UUID too: try it as one
    }
  }
  const found = (await rpc.call(deviceRpc.list, { query: { limit: 1, device_id: device } })).items[0];
  if (!found) {
    throw new CliError(
      `no device ${device} in organization ${rpc.actor.org} (ferry device list --org ${rpc.actor.org})`,
    );
  }
  return found;
}

export interface AddDeviceOptions {
  org?: string;
  deviceId?: string;
  name?: string;
  robotType?: string;
  /** Comma-separated topic names the device's recordings should contain. */
  topics?: string;
}

export async function addDevice(env: Env, options: AddDeviceOptions): Promise<Device> {
  const org = orgOf(options.org);
  const flags: Record<string, string> = {
    device_id: '--device-id',
    name: '--name',
    robot_type: '--robot-type',
    expected_topics: '--topics',
  };
  const body = CreateDeviceBody.safeParse({
    device_id: required(options.deviceId, '--device-id'),
    ...(options.name ? { name: options.name } : {}),
    ...(options.robotType ? { robot_type: options.robotType } : {}),
    ...(options.topics
      ? {
          expected_topics: options.topics
            .split(',')
            .map((t) => t.trim())
            .filter(Boolean),
        }
      : {}),
  });
  if (!body.success) {
    const issue = body.error.issues[0]!;
    const flag = flags[String(issue.path[0])] ?? String(issue.path[0]);
    const at = issue.path.length > 1 ? ` (topic ${Number(issue.path[1]) + 1})` : '';
    throw new CliError(`${flag}${at}: ${issue.message}`, { exitCode: 2 });
  }
  return withAdminRpc(env, { org }, async (rpc) => {
    try {
      return await rpc.call(deviceRpc.create, { device: body.data });
    } catch (err) {
      if (err instanceof DomainError && err.code === 'name_taken') {
        throw new CliError(
          `device ${body.data.device_id} is already registered in organization ${org} (ferry device list --org ${org})`,
          { cause: err },
        );
      }
      throw err;
    }
  });
}

export interface PairDeviceOptions {
  org?: string;
  device?: string;
  /** Lifetime of the pairing token. Default 10 minutes (transfer's default). */
  ttlSeconds?: number;
  /** Exchange the pairing token for a device token at once, as the device would. */
  redeem?: boolean;
  /** The device token's label (with `redeem`). */
  label?: string;
}

export interface PairResult {
  device: Device;
  pairing: PairingToken;
  /** With `redeem`: the device token, shown once. */
  issued?: IssuedDeviceToken;
}

export async function pairDevice(env: Env, options: PairDeviceOptions): Promise<PairResult> {
  const org = orgOf(options.org);
  const named = required(options.device, '--device');
  return withAdminRpc(env, { org }, async (rpc) => {
    const device = await resolveDevice(rpc, named);
    const pairing = await rpc.call(deviceRpc.createPairingToken, {
      id: device.id,
      ttl_seconds: options.ttlSeconds ?? 600,
    });
    if (!options.redeem) return { device, pairing };
    const issued = await rpc.call(deviceRpc.redeemPairingToken, {
      pairing_token: pairing.pairing_token,
      ...(options.label ? { label: options.label } : {}),
    });
    return { device, pairing, issued };
  });
}

export interface RevokeOptions {
  org?: string;
  device?: string;
  /** One token's id (`ferry device list` shows them). */
  tokenId?: string;
  /** Every live token of the device. */
  all?: boolean;
}

export async function revokeDeviceTokens(
  env: Env,
  options: RevokeOptions,
): Promise<{ device: Device; revoked: DeviceTokenInfo[] }> {
  const org = orgOf(options.org);
  const named = required(options.device, '--device');
  if (options.tokenId && options.all) throw new CliError('give --token TOKEN_ID or --all, not both', { exitCode: 2 });
  if (options.tokenId && !z.uuid().safeParse(options.tokenId).success) {
    throw new CliError('--token must be a token id (a UUID, as ferry device list shows it)', { exitCode: 2 });
  }
  return withAdminRpc(env, { org }, async (rpc) => {
    const device = await resolveDevice(rpc, named);
    if (options.tokenId) {
      try {
        return {
          device,
          revoked: [await rpc.call(deviceRpc.revokeToken, { id: device.id, token_id: options.tokenId })],
        };
      } catch (err) {
        if (err instanceof DomainError && err.code === 'not_found') {
          throw new CliError(`device ${device.device_id} has no token ${options.tokenId}`, { cause: err });
        }
        throw err;
      }
    }
    const live = (await rpc.call(deviceRpc.listTokens, { id: device.id })).items.filter((t) => !t.revoked_at);
    if (!options.all) {
      throw new CliError(
        `say which token of ${device.device_id} to revoke: --token TOKEN_ID or --all (live tokens: ${
          live.map((t) => t.id).join(', ') || 'none'
        })`,
        { exitCode: 2 },
      );
    }
    const revoked = [];
    for (const token of live)
      revoked.push(await rpc.call(deviceRpc.revokeToken, { id: device.id, token_id: token.id }));
    return { device, revoked };
  });
}

export interface ListedDevice extends Device {
  tokens: DeviceTokenInfo[];
}

/** Every live device of the organization (all pages), oldest registration last, with its tokens. */
export async function listDevices(env: Env, options: { org?: string }): Promise<ListedDevice[]> {
  const org = orgOf(options.org);
  return withAdminRpc(env, { org }, async (rpc) => {
    const devices: Device[] = [];
    let cursor: string | undefined;
    do {
      const page = await rpc.call(deviceRpc.list, { query: { limit: 200, ...(cursor ? { cursor } : {}) } });
      devices.push(...page.items);
      cursor = page.next_cursor ?? undefined;
    } while (cursor);
    const listed: ListedDevice[] = [];
    for (const device of devices) {
      listed.push({ ...device, tokens: (await rpc.call(deviceRpc.listTokens, { id: device.id })).items });
    }
    return listed;
  });
}

// ------------------------------------------------------------------------------------------- output

export function describeDevice(device: Device): string {
  return [
    `device ${device.device_id}  (id ${device.id})`,
    `  name          ${device.name}`,
    `  robot type    ${device.robot_type ?? '-'}`,
    `  topics        ${device.expected_topics.join(', ') || '-'}`,
    `  organization  ${device.organization_id}`,
  ].join('\n');
}

export function describeDevices(devices: readonly ListedDevice[]): string {
  if (devices.length === 0) return 'no devices (ferry device add --org ORG --device-id ID registers one)';
  const lines = [];
  for (const d of devices) {
    const live = d.tokens.filter((t) => !t.revoked_at);
    lines.push(
      `${d.device_id}  id ${d.id}  robot ${d.robot_type ?? '-'}  topics ${d.expected_topics.join(',') || '-'}  ` +
        `tokens ${live.length} live / ${d.tokens.length}`,
    );
    for (const t of live) {
      lines.push(
        `  token ${t.id}  created ${t.created_at}  last used ${t.last_used_at ?? 'never'}${t.label ? `  (${t.label})` : ''}`,
      );
    }
  }
  return lines.join('\n');
}
