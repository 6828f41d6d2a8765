import { fileURLToPath } from 'node:url';
import type { MigrationSource } from './db/migrator.js';

/** The messaging tables (outbox, inbox, command log), applied to every service schema first. */
export const PLATFORM_MIGRATIONS: MigrationSource = {
  name: 'platform',
  // Resolves to packages/platform/migrations from both src/ (tests) and dist/ (built).
  dir: fileURLToPath(new URL('../migrations', import.meta.url)),
};
