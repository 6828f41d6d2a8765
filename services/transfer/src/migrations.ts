/**
 * The service's schema migrations, as data: a name and the folder of plain SQL files. This module is
 * the service's `./migrations` subpath (`@ferry/transfer/migrations`) and must stay free of runtime
 * imports: the CLI's `ferry setup` loads it to migrate every schema without pulling in the service
 * (NestJS, its providers, its config) — packages never import a service's code (STYLE.md).
 */
import { fileURLToPath } from 'node:url';
import type { MigrationSource } from '@ferry/platform';

export const TRANSFER_MIGRATIONS: MigrationSource = {
  name: 'transfer',
  dir: fileURLToPath(new URL('../migrations', import.meta.url)),
};
