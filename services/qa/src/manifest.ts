import { fileURLToPath } from 'node:url';
import { type MigrationSource, ServiceConfig, type ServiceDefinition } from '@ferry/platform';
import { z } from 'zod';
import { QaModule } from './qa.module.js';

export const QA_MIGRATIONS: MigrationSource = {
  name: 'qa',
  dir: fileURLToPath(new URL('../migrations', import.meta.url)),
};

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
