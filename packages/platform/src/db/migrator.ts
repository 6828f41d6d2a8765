import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type pg from 'pg';

/** Plain, reviewed SQL files applied in name order, each in its own transaction. */
export interface MigrationSource {
  /** Recorded with each migration name, e.g. `platform` or `production`. */
  readonly name: string;
  /** Directory of `NNNN_description.sql` files. */
  readonly dir: string;
}

export interface MigrationStatus {
  applied: string[];
  pending: string[];
}

export class MigrationError extends Error {
  override readonly name = 'MigrationError';
}

interface MigrationFile {
  id: string;
  file: string;
  checksum: string;
  sql: string;
}

async function readSource(source: MigrationSource): Promise<MigrationFile[]> {
  const files = (await readdir(source.dir)).filter((f) => /^\d{4}_[a-z0-9_]+\.sql$/.test(f)).sort();
  return Promise.all(
    files.map(async (file) => {
      const sql = await readFile(path.join(source.dir, file), 'utf8');
      return {
        id: `${source.name}/${file}`,
        file,
        sql,
        checksum: createHash('sha256').update(sql).digest('hex'),
      };
    }),
  );
}

const quote = (ident: string) => `"${ident.replaceAll('"', '""')}"`;

/**
 * Brings `schema` up to date with the sources (in the order given). Safe to run from several
 * processes at once: a session advisory lock per schema serialises them and the losers find nothing
 * left to do. An applied migration whose file changed afterwards is refused, not silently skipped.
 */
export async function migrate(pool: pg.Pool, schema: string, sources: readonly MigrationSource[]): Promise<string[]> {
  const migrations = (await Promise.all(sources.map(readSource))).flat();
  const client = await pool.connect();
  try {
    await client.query('select pg_advisory_lock(hashtext($1))', [`ferry.migrate.${schema}`]);
    try {
      await client.query(`create schema if not exists ${quote(schema)}`);
      await client.query(
        `create table if not exists ${quote(schema)}.schema_migrations (
           id text primary key,
           checksum text not null,
           applied_at timestamptz not null default now()
         )`,
      );
      const { rows } = await client.query<{ id: string; checksum: string }>(
        `select id, checksum from ${quote(schema)}.schema_migrations`,
      );
      const applied = new Map(rows.map((r) => [r.id, r.checksum]));
      const done: string[] = [];
      for (const m of migrations) {
        const previous = applied.get(m.id);
        if (previous !== undefined) {
          if (previous !== m.checksum) {
            throw new MigrationError(`migration ${m.id} was changed after it was applied to ${schema}; add a new one`);
          }
          continue;
        }
        await client.query('begin');
        try {
          await client.query(`set local search_path = ${quote(schema)}, public`);
          await client.query(m.sql);
          await client.query(`insert into ${quote(schema)}.schema_migrations (id, checksum) values ($1, $2)`, [
            m.id,
            m.checksum,
          ]);
          await client.query('commit');
        } catch (err) {
          await client.query('rollback');
          throw new MigrationError(`migration ${m.id} failed on ${schema}: ${(err as Error).message}`, { cause: err });
        }
        done.push(m.id);
      }
      return done;
    } finally {
      await client.query('select pg_advisory_unlock(hashtext($1))', [`ferry.migrate.${schema}`]);
    }
  } finally {
    client.release();
  }
}

/** What is applied and what is still pending, without changing anything. */
export async function migrationStatus(
  pool: pg.Pool,
  schema: string,
  sources: readonly MigrationSource[],
): Promise<MigrationStatus> {
  const migrations = (await Promise.all(sources.map(readSource))).flat();
  const { rows } = await pool.query<{ exists: boolean }>(
    `select exists (select 1 from information_schema.tables where table_schema = $1 and table_name = 'schema_migrations')`,
    [schema],
  );
  const applied = rows[0]?.exists
    ? new Set(
        (await pool.query<{ id: string }>(`select id from ${quote(schema)}.schema_migrations`)).rows.map((r) => r.id),
      )
    : new Set<string>();
  return {
    applied: migrations.filter((m) => applied.has(m.id)).map((m) => m.id),
    pending: migrations.filter((m) => !applied.has(m.id)).map((m) => m.id),
  };
}

/** Throws with the command to run when the schema is behind the code. */
export async function assertMigrated(pool: pg.Pool, schema: string, sources: readonly MigrationSource[]) {
  const status = await migrationStatus(pool, schema, sources);
  if (status.pending.length > 0) {
    throw new MigrationError(
      `schema ${schema} is missing migrations ${status.pending.join(', ')}: run \`npm run ferry -- setup\` (or \`ferry migrate\`)`,
    );
  }
}
