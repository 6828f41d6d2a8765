import { fileURLToPath } from 'node:url';
import { type MigrationSource, ServiceConfig, type ServiceDefinition } from '@ferry/platform';
import { z } from 'zod';
import { TransferModule } from './transfer.module.js';

export const TRANSFER_MIGRATIONS: MigrationSource = {
  name: 'transfer',
  dir: fileURLToPath(new URL('../migrations', import.meta.url)),
};

export const TransferConfig = ServiceConfig.extend({
  HEALTH_PORT: z.coerce.number().int().min(0).max(65535).default(3102),
});
export type TransferConfig = z.infer<typeof TransferConfig>;

export const transferService: ServiceDefinition<TransferConfig> = {
  name: 'transfer',
  config: TransferConfig,
  module: TransferModule,
  migrations: TRANSFER_MIGRATIONS,
  rpcs: [],
  consumers: [],
  streams: ['TRANSFER', 'DLQ'],
};
