import path from 'node:path';
import { batchRpc, deviceRpc, orderRpc, type RpcDefinition, sceneRpc, taskRpc, workstationRpc } from '@ferry/contracts';
import { DomainError, mintAccessToken, newId } from '@ferry/platform';
import type { z } from 'zod';
import { withAdminRpc } from './admin-rpc.js';
import type { Env } from './setup.js';

export const DEMO = {
  scene: 'demo-kitchen-pick',
  order: 'demo-500-kitchen-pick',
  device: 'demo-arm-01',
  /** What the demo recordings hold (`npm run demo:upload`). */
  topics: ['/camera', '/joints'],
  collector: 'demo-collector-01',
  groups: [
    { group: 'pick-cup-left', quantity: 5 },
    { group: 'pick-cup-right', quantity: 5 },
  ],
} as const;

export interface SeedResult {
  org: string;
  scene_id: string;
  order_id: string;
  workstation_id: string;
  device_id: string;
  /** The demo device as transfer registered it, paired, with a device token made by this run. */
  device: { id: string; device_id: string; token: string; token_id: string };
  batch_id: string;
  task_ids: string[];
  tokens: { admin: string; operator: string; viewer: string };
}

/**
 * A ready-to-use demo organization: scene, order, workstation (device + collector), a batch of tasks,
 * the device registered and paired, and tokens. Safe to run again: existing demo objects are found
 * and reused, never duplicated — except the device token: the seed cannot read back a token it made
 * before (only its hash is kept), so every run pairs again and issues a new one; the earlier ones keep
 * working until revoked (`ferry device revoke --all`). Talks to production and transfer over NATS, so
 * the system must be running.
 */
export async function seed(env: Env, options: { org?: string; secret?: string } = {}): Promise<SeedResult> {
  const secret = options.secret ?? process.env.FERRY_JWT_SECRET;
  if (!secret) throw new Error('set FERRY_JWT_SECRET so the seed can mint the demo tokens');
  const org = options.org ?? newId();
  return withAdminRpc(env, { org, sub: 'demo-seed' }, async (rpc) => {
    const call = <R extends RpcDefinition>(def: R, data: z.input<R['request']>) => rpc.call(def, data);
    /** Create, or on a name/binding conflict find the existing one. */
    const ensure = async <T>(create: () => Promise<T>, find: () => Promise<T | undefined>): Promise<T> => {
      try {
        return await create();
      } catch (err) {
        if (err instanceof DomainError && (err.code === 'name_taken' || err.code === 'binding_taken')) {
          const found = await find();
          if (found) return found;
        }
        throw err;
      }
    };

    const scene = await ensure(
      () => call(sceneRpc.create, { scene: { name: DEMO.scene, description: 'Pick a cup from the counter (demo)' } }),
      async () =>
        (await call(sceneRpc.list, { query: { limit: 200, q: DEMO.scene } })).items.find((s) => s.name === DEMO.scene),
    );
    const order = await ensure(
      () =>
        call(orderRpc.create, {
          order: {
            scene_id: scene.id,
            name: DEMO.order,
            target_count: 500,
            priority: 'high',
            metadata: { demo: true },
          },
        }),
      async () =>
        (await call(orderRpc.list, { query: { limit: 200, q: DEMO.order } })).items.find((o) => o.name === DEMO.order),
    );
    const workstation = await ensure(
      () =>
        call(workstationRpc.create, {
          workstation: {
            name: 'demo-station',
            device_id: DEMO.device,
            collector_operator_id: DEMO.collector,
            collector_name: 'Demo Collector',
            metadata: {},
          },
        }),
      async () =>
        (await call(workstationRpc.list, { query: { limit: 10, device_id: DEMO.device, include_history: false } }))
          .items[0],
    );
    const existing = (
      await call(batchRpc.list, {
        query: { limit: 1, order_id: order.id, workstation_id: workstation.id, status: ['pending', 'active'] },
      })
    ).items[0];
    const batchId =
      existing?.id ??
      (
        await call(batchRpc.create, {
          batch: {
            order_id: order.id,
            workstation_id: workstation.id,
            name: 'demo-batch-1',
            task_groups: [...DEMO.groups],
            metadata: {},
          },
        })
      ).batch.id;
    const tasks = await call(taskRpc.list, { query: { limit: 20, batch_id: batchId, status: ['pending'] } });
    // The workstation names the device by its device_id; transfer holds it as a registered device.
    const device = await ensure(
      () =>
        call(deviceRpc.create, {
          device: {
            device_id: DEMO.device,
            name: 'Demo arm 01',
            robot_type: 'demo-arm',
            expected_topics: [...DEMO.topics],
            metadata: { demo: true },
          },
        }),
      async () => (await call(deviceRpc.list, { query: { limit: 1, device_id: DEMO.device } })).items[0],
    );
    const pairing = await call(deviceRpc.createPairingToken, { id: device.id, ttl_seconds: 600 });
    const issued = await call(deviceRpc.redeemPairingToken, {
      pairing_token: pairing.pairing_token,
      label: 'ferry seed',
    });

    const mint = (role: 'admin' | 'operator' | 'viewer') =>
      mintAccessToken({ secret, org, role, sub: `demo-${role}`, ttlSeconds: 7 * 24 * 3600 });
    return {
      org,
      scene_id: scene.id,
      order_id: order.id,
      workstation_id: workstation.id,
      device_id: workstation.device_id,
      device: { id: device.id, device_id: device.device_id, token: issued.token, token_id: issued.token_id },
      batch_id: batchId,
      task_ids: tasks.items.map((t) => t.id),
      tokens: { admin: await mint('admin'), operator: await mint('operator'), viewer: await mint('viewer') },
    };
  });
}

export interface DescribeSeedOptions {
  /** The gateway the printed commands call. Default `http://127.0.0.1:3000`. */
  gatewayUrl?: string;
  /** Where the demo device file was written (`--data-dir`); without it the upload command carries the token. */
  dataDir?: string;
}

/** How to run the demo upload with what this seed left behind. */
function demoUploadCommand(s: SeedResult, gatewayUrl: string, dataDir: string | undefined): string {
  if (!dataDir) return `npm run demo:upload -- --gateway-url ${gatewayUrl} --token ${s.device.token}`;
  return path.resolve(dataDir) === path.resolve('.data')
    ? 'npm run demo:upload'
    : `npm run demo:upload -- --data-dir ${dataDir}`;
}

export function describeSeed(s: SeedResult, options: DescribeSeedOptions = {}): string {
  const gatewayUrl = options.gatewayUrl ?? 'http://127.0.0.1:3000';
  const task = s.task_ids[0] ?? '<task-id>';
  return [
    `Demo organization ${s.org}`,
    `  scene        ${s.scene_id}  (${DEMO.scene})`,
    `  order        ${s.order_id}  (${DEMO.order}, target 500)`,
    `  workstation  ${s.workstation_id}  (device ${s.device_id}, collector ${DEMO.collector})`,
    `  batch        ${s.batch_id}  (${s.task_ids.length} pending tasks)`,
    `  device       ${s.device.id}  (${s.device.device_id}, registered and paired)`,
    '',
    'Tokens (7 days):',
    `  admin     ${s.tokens.admin}`,
    `  operator  ${s.tokens.operator}`,
    `  viewer    ${s.tokens.viewer}`,
    '',
    'Try it:',
    `  export TOKEN=${s.tokens.operator}`,
    `  curl -s -H "Authorization: Bearer $TOKEN" ${gatewayUrl}/api/v1/orders/${s.order_id}`,
    `  curl -s -H "Authorization: Bearer $TOKEN" "${gatewayUrl}/api/v1/tasks?batch_id=${s.batch_id}&status=pending"`,
    `  curl -s -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \\`,
    `       -d '{"device_id":"${s.device_id}"}' ${gatewayUrl}/api/v1/tasks/${task}/start`,
    '',
    `Device token of ${s.device.device_id} (token id ${s.device.token_id}; shown once, a new one on every seed run,`,
    'earlier ones keep working until revoked with `ferry device revoke`):',
    `  ${s.device.token}`,
    `  curl -s -H "Authorization: Bearer ${s.device.token}" ${gatewayUrl}/api/v1/device/tasks`,
    '',
    'Record and upload a demo MCAP as that device, and see its episode (docs/devices.md):',
    `  ${demoUploadCommand(s, gatewayUrl, options.dataDir)}`,
  ].join('\n');
}
