import { type ConsumerDefinition, productionConsumers, productionRpc, type RpcDefinition } from '@ferry/contracts';
import { ServiceConfig, type ServiceDefinition } from '@ferry/platform';
import { z } from 'zod';
import { PRODUCTION_MIGRATIONS } from './migrations.js';
import { ProductionModule } from './production.module.js';

export const ProductionConfig = ServiceConfig.extend({
  HEALTH_PORT: z.coerce.number().int().min(0).max(65535).default(3101),
});
export type ProductionConfig = z.infer<typeof ProductionConfig>;

function leaves<T>(tree: object, isLeaf: (v: unknown) => boolean): T[] {
  return Object.values(tree).flatMap((v) =>
    isLeaf(v) ? [v as T] : typeof v === 'object' && v ? leaves<T>(v, isLeaf) : [],
  );
}

export const productionService: ServiceDefinition<ProductionConfig> = {
  name: 'production',
  config: ProductionConfig,
  module: ProductionModule,
  migrations: PRODUCTION_MIGRATIONS,
  rpcs: leaves<RpcDefinition>(productionRpc, (v) => !!v && typeof v === 'object' && 'subject' in v),
  consumers: Object.values(productionConsumers) as ConsumerDefinition[],
  streams: ['PRODUCTION', 'TRANSFER', 'QA', 'DLQ'],
};
