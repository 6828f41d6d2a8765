import { fileURLToPath } from 'node:url';
import type { MigrationSource } from '@ferry/platform';

export const GATEWAY_MIGRATIONS: MigrationSource = {
  name: 'gateway',
  dir: fileURLToPath(new URL('../migrations', import.meta.url)),
};
