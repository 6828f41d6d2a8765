// Only the services' `./migrations` subpaths: each is a name and a folder of SQL files with no runtime
// import, so the CLI migrates every schema without loading a service (NestJS, Hono, their providers).
// That subpath is the one seam between a package and the services; src/imports.test.ts keeps it so.
import { GATEWAY_MIGRATIONS } from '@ferry/gateway/migrations';
import { type MigrationSource, migrate, migrationSources, type Namespace, provisionTopology } from '@ferry/platform';
import { PRODUCTION_MIGRATIONS } from '@ferry/production/migrations';
import { QA_MIGRATIONS } from '@ferry/qa/migrations';
import { TRANSFER_MIGRATIONS } from '@ferry/transfer/migrations';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import pg from 'pg';

export const SERVICE_MIGRATIONS: Record<string, MigrationSource> = {
  production: PRODUCTION_MIGRATIONS,
  transfer: TRANSFER_MIGRATIONS,
  qa: QA_MIGRATIONS,
  gateway: GATEWAY_MIGRATIONS,
};

export interface Env {
  databaseUrl: string;
  natsUrl: string;
  ns: Namespace;
}

export async function provision(env: Env, options: { replicas?: number } = {}): Promise<void> {
  const nc = await connect({ servers: env.natsUrl.split(','), name: 'ferry-cli' });
  try {
    const report = await provisionTopology(await jetstreamManager(nc), env.ns, { replicas: options.replicas });
    for (const what of report.created) console.log(`created   ${what}`);
    for (const what of report.updated) console.log(`updated   ${what}`);
    for (const what of report.unchanged) console.log(`unchanged ${what}`);
  } finally {
    await nc.close();
  }
}

export async function migrateAll(env: Env, only?: string): Promise<void> {
  const pool = new pg.Pool({ connectionString: env.databaseUrl, max: 1 });
  try {
    for (const [service, source] of Object.entries(SERVICE_MIGRATIONS)) {
      if (only && only !== service) continue;
      const schema = env.ns.schema(service);
      const applied = await migrate(pool, schema, migrationSources(source));
      console.log(applied.length ? `migrated  ${schema}: ${applied.join(', ')}` : `current   ${schema}`);
    }
  } finally {
    await pool.end();
  }
}
