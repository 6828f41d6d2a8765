import { ServiceConfig, type ServiceDefinition } from '@ferry/platform';
import { z } from 'zod';
import { QA_MIGRATIONS } from './migrations.js';
import { QaModule } from './qa.module.js';

export const QaConfig = ServiceConfig.extend({
  HEALTH_PORT: z.coerce.number().int().min(0).max(65535).default(3103),
});
export type QaConfig = z.infer<typeof QaConfig>;

export const qaService: ServiceDefinition<QaConfig> = {
  name: 'qa',
  config: QaConfig,
  module: QaModule,
  migrations: QA_MIGRATIONS,
  rpcs: [],
  consumers: [],
  streams: ['QA', 'DLQ'],
};
