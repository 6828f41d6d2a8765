import {
  type Actor,
  batchRpc,
  orderRpc,
  type RpcCallContext,
  type RpcDefinition,
  sceneRpc,
  taskRpc,
  workstationRpc,
} from '@ferry/contracts';
import { connectNats, createLogger, DomainError, mintAccessToken, newId, RpcClient } from '@ferry/platform';

import type { z } from 'zod';
import type { Env } from './setup.js';

export const DEMO = {
  scene: 'demo-kitchen-pick',
  order: 'demo-500-kitchen-pick',
  device: 'demo-arm-01',
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
  batch_id: string;
  task_ids: string[];
  tokens: { admin: string; operator: string; viewer: string };
}

/**
 * A ready-to-use demo organization: scene, order, workstation (device + collector), a batch of tasks
 * and tokens. Safe to run again: existing demo objects are found and reused, never duplicated.
 * Talks to the production service over NATS, so the system must be running.
 */
export async function seed(env: Env, options: { org?: string; secret?: string } = {}): Promise<SeedResult> {
  const secret = options.secret ?? process.env.FERRY_JWT_SECRET;
  if (!secret) throw new Error('set FERRY_JWT_SECRET so the seed can mint the demo tokens');
  const org = options.org ?? newId();
  const logger = createLogger({ service: 'cli', level: 'silent' });
  const nc = await connectNats({ servers: env.natsUrl, name: 'ferry-seed', logger });
  try {
    const rpc = new RpcClient({ nc, ns: env.ns, logger, timeoutMs: 10_000 });
    const actor: Actor = { kind: 'user', sub: 'demo-seed', org, role: 'admin' };
    const ctx = (): RpcCallContext => ({ request_id: `seed-${newId()}`, actor });
    const call = <R extends RpcDefinition>(def: R, data: z.input<R['request']>) => rpc.call(def, data, ctx());
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

    const mint = (role: 'admin' | 'operator' | 'viewer') =>
      mintAccessToken({ secret, org, role, sub: `demo-${role}`, ttlSeconds: 7 * 24 * 3600 });
    return {
      org,
      scene_id: scene.id,
      order_id: order.id,
      workstation_id: workstation.id,
      device_id: workstation.device_id,
      batch_id: batchId,
      task_ids: tasks.items.map((t) => t.id),
      tokens: { admin: await mint('admin'), operator: await mint('operator'), viewer: await mint('viewer') },
    };
  } finally {
    await nc.close();
  }
}

export function describeSeed(s: SeedResult, gatewayUrl = 'http://127.0.0.1:3000'): string {
  const task = s.task_ids[0] ?? '<task-id>';
  return [
    `Demo organization ${s.org}`,
    `  scene        ${s.scene_id}  (${DEMO.scene})`,
    `  order        ${s.order_id}  (${DEMO.order}, target 500)`,
    `  workstation  ${s.workstation_id}  (device ${s.device_id}, collector ${DEMO.collector})`,
    `  batch        ${s.batch_id}  (${s.task_ids.length} pending tasks)`,
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
  ].join('\n');
}
