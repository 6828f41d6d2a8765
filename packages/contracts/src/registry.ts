import type { ConsumerDefinition, EventDefinition, RpcDefinition } from './messaging.js';
import { productionConsumers, productionEvents, productionRpc } from './production/index.js';
import { qaConsumers, qaEvents, qaRpc } from './qa/index.js';
import { transferConsumers, transferEvents, transferRpc } from './transfer/index.js';

function flatten<T>(tree: unknown, isLeaf: (v: unknown) => v is T): T[] {
  if (isLeaf(tree)) return [tree];
  if (tree && typeof tree === 'object') return Object.values(tree).flatMap((v) => flatten(v, isLeaf));
  return [];
}

const isEvent = (v: unknown): v is EventDefinition =>
  !!v && typeof v === 'object' && 'type' in v && 'schema' in v && 'stream' in v;
const isRpc = (v: unknown): v is RpcDefinition =>
  !!v && typeof v === 'object' && 'subject' in v && 'request' in v && 'reply' in v;
const isConsumer = (v: unknown): v is ConsumerDefinition =>
  !!v && typeof v === 'object' && 'durable' in v && 'filterSubject' in v;

/** Every event type, RPC and durable consumer of the system, for provisioning, docs and checks. */
export const ALL_EVENTS: readonly EventDefinition[] = [
  ...flatten(productionEvents, isEvent),
  ...flatten(transferEvents, isEvent),
  ...flatten(qaEvents, isEvent),
];
export const ALL_RPCS: readonly RpcDefinition[] = [
  ...flatten(productionRpc, isRpc),
  ...flatten(transferRpc, isRpc),
  ...flatten(qaRpc, isRpc),
];
export const ALL_CONSUMERS: readonly ConsumerDefinition[] = [
  ...flatten(productionConsumers, isConsumer),
  ...flatten(transferConsumers, isConsumer),
  ...flatten(qaConsumers, isConsumer),
];

export function findEvent(type: string): EventDefinition | undefined {
  return ALL_EVENTS.find((e) => e.type === type);
}
