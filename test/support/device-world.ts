import { DeviceUploader, type DeviceUploaderOptions } from '@ferry/cli';
import { v7 as uuidv7 } from 'uuid';
import type { System } from './system.js';

export interface DeviceWorld {
  org: string;
  operator: ReturnType<System['client']>;
  admin: ReturnType<System['client']>;
  device: { id: string; device_id: string; token: string; api: ReturnType<System['client']> };
  workstationId: string;
  orderId: string;
  batchId: string;
  taskIds: string[];
  uploader(options?: Partial<DeviceUploaderOptions>): DeviceUploader;
}

/**
 * An organization with a scene, an order, a registered device paired (pairing token → device token)
 * and bound to a workstation, and a batch of `tasks` pending tasks for it — all through the HTTP API.
 */
export async function deviceWorld(
  system: System,
  options: { tasks?: number; org?: string; deviceId?: string } = {},
): Promise<DeviceWorld> {
  const org = options.org ?? uuidv7();
  const admin = system.client(await system.token(org, 'admin'));
  const operator = system.client(await system.token(org, 'operator'));
  const must = <T extends { status: number; body: any }>(r: T, status = 201): T => {
    if (r.status !== status) throw new Error(`expected ${status}, got ${r.status}: ${JSON.stringify(r.body)}`);
    return r;
  };
  const deviceId = options.deviceId ?? `arm-${uuidv7().slice(-8)}`;
  const scene = must(await operator('POST', '/scenes', { name: `scene-${uuidv7()}` }));
  const order = must(
    await operator('POST', '/orders', { scene_id: scene.body.id, name: `order-${uuidv7()}`, target_count: 100 }),
  );
  const device = must(await operator('POST', '/devices', { device_id: deviceId, robot_type: 'arm-v1' }));
  const ws = must(
    await operator('POST', '/workstations', { device_id: deviceId, collector_operator_id: `op-${uuidv7().slice(-8)}` }),
  );
  const batch = must(
    await operator('POST', '/batches', {
      order_id: order.body.id,
      workstation_id: ws.body.id,
      task_groups: [{ group: 'g', quantity: options.tasks ?? 1 }],
    }),
  );
  const issued = { token: await pairDevice(system, admin, device.body.id) };
  return {
    org,
    admin,
    operator,
    device: { id: device.body.id, device_id: deviceId, token: issued.token, api: system.client(issued.token) },
    workstationId: ws.body.id,
    orderId: order.body.id,
    batchId: batch.body.batch.id,
    taskIds: batch.body.tasks.map((t: { id: string }) => t.id),
    uploader: (extra = {}) => new DeviceUploader({ baseUrl: system.gatewayUrl, token: issued.token, ...extra }),
  };
}

/** Pairs the registered device `id` through the API (an admin's pairing token, redeemed): its device token. */
export async function pairDevice(system: System, admin: ReturnType<System['client']>, id: string): Promise<string> {
  const pairing = await admin('POST', `/devices/${id}/pairing-tokens`, {});
  if (pairing.status !== 201) throw new Error(`pairing token: ${pairing.status} ${JSON.stringify(pairing.body)}`);
  const res = await fetch(`${system.gatewayUrl}/api/v1/device-tokens`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ pairing_token: pairing.body.pairing_token }),
  });
  const issued = (await res.json()) as { token: string };
  if (res.status !== 201) throw new Error(`pairing failed: ${res.status} ${JSON.stringify(issued)}`);
  return issued.token;
}
