import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  fixturePath,
  type RunningChild,
  startChild,
  testDatabaseUrl,
  uniqueNamespace,
  waitFor,
} from '../testing/index.js';
import { assertMigrated, MigrationError, migrate, migrationStatus } from './migrator.js';

describe('migrate', () => {
  let pool: pg.Pool;
  let dir: string;
  const schemas: string[] = [];
  const fresh = () => {
    const s = `${uniqueNamespace()}_svc`;
    schemas.push(s);
    return s;
  };

  beforeAll(async () => {
    pool = new pg.Pool({ connectionString: testDatabaseUrl(), max: 8 });
    dir = await mkdtemp(path.join(tmpdir(), 'ferry-mig-'));
    await writeFile(path.join(dir, '0001_things.sql'), 'create table things (id int primary key, name text not null);');
    await writeFile(path.join(dir, '0002_more.sql'), 'alter table things add column size int not null default 0;');
    await writeFile(path.join(dir, 'README.md'), 'not a migration');
  });

  afterAll(async () => {
    for (const s of schemas) await pool.query(`drop schema if exists "${s}" cascade`);
    await pool.end();
    await rm(dir, { recursive: true, force: true });
  });

  it('applies pending files in order inside the schema and records them', async () => {
    const schema = fresh();
    const applied = await migrate(pool, schema, [{ name: 'svc', dir }]);
    expect(applied).toEqual(['svc/0001_things.sql', 'svc/0002_more.sql']);
    const { rows } = await pool.query(
      `select column_name from information_schema.columns where table_schema = $1 and table_name = 'things' order by ordinal_position`,
      [schema],
    );
    expect(rows.map((r) => r.column_name)).toEqual(['id', 'name', 'size']);
    expect(await migrate(pool, schema, [{ name: 'svc', dir }])).toEqual([]);
    await expect(assertMigrated(pool, schema, [{ name: 'svc', dir }])).resolves.toBeUndefined();
  });

  it('lets several processes migrate at once: each migration runs exactly once', async () => {
    const schema = fresh();
    const appName = `migrate-${schema}`;
    // Hold the migrator's lock so the processes pile up behind it, then let them all go at once.
    const holder = await pool.connect();
    const children: RunningChild[] = [];
    try {
      await holder.query('select pg_advisory_lock(hashtext($1))', [`ferry.migrate.${schema}`]);
      for (let i = 0; i < 3; i++) {
        children.push(
          startChild(fixturePath('migrate-worker'), {
            DATABASE_URL: testDatabaseUrl(),
            MIGRATE_SCHEMA: schema,
            MIGRATE_DIR: dir,
            APPLICATION_NAME: appName,
          }),
        );
      }
      const waiting = await waitFor(
        async () => {
          const { rows } = await pool.query<{ pids: number }>(
            `select count(distinct a.pid)::int as pids
               from pg_locks l join pg_stat_activity a on a.pid = l.pid
              where l.locktype = 'advisory' and not l.granted and a.application_name = $1`,
            [appName],
          );
          return rows[0]!.pids === 3 && rows[0]!.pids;
        },
        { timeoutMs: 20_000, what: 'three migrator processes waiting on the lock' },
      );
      expect(waiting).toBe(3);
      await holder.query('select pg_advisory_unlock(hashtext($1))', [`ferry.migrate.${schema}`]);
      const exits = await Promise.all(children.map((c) => c.waitForExit()));
      expect(exits.map((e) => e.code)).toEqual([0, 0, 0]);
    } finally {
      await holder.query('select pg_advisory_unlock_all()');
      holder.release();
      await Promise.all(children.map((c) => c.stop()));
    }
    const applied = children.map((c) => JSON.parse(c.output().trim()) as string[]);
    expect(applied.flat().sort()).toEqual(['svc/0001_things.sql', 'svc/0002_more.sql']);
    expect(applied.filter((a) => a.length > 0)).toHaveLength(1); // the first in does it all, the rest find nothing
    const { rows } = await pool.query(`select id from "${schema}".schema_migrations order by id`);
    expect(rows.map((r) => r.id)).toEqual(['svc/0001_things.sql', 'svc/0002_more.sql']);
  });

  it('reports pending migrations and refuses a service whose schema is behind', async () => {
    const schema = fresh();
    const status = await migrationStatus(pool, schema, [{ name: 'svc', dir }]);
    expect(status).toEqual({ applied: [], pending: ['svc/0001_things.sql', 'svc/0002_more.sql'] });
    await expect(assertMigrated(pool, schema, [{ name: 'svc', dir }])).rejects.toThrow(
      /missing migrations svc\/0001_things.sql/,
    );
  });

  it('refuses an applied migration whose file was edited afterwards', async () => {
    const schema = fresh();
    const own = await mkdtemp(path.join(tmpdir(), 'ferry-mig-'));
    await writeFile(path.join(own, '0001_a.sql'), 'create table a (id int);');
    await migrate(pool, schema, [{ name: 'svc', dir: own }]);
    await writeFile(path.join(own, '0001_a.sql'), 'create table a (id bigint);');
    await expect(migrate(pool, schema, [{ name: 'svc', dir: own }])).rejects.toBeInstanceOf(MigrationError);
    await rm(own, { recursive: true, force: true });
  });

  it('rolls back a failing migration entirely and leaves earlier ones applied', async () => {
    const schema = fresh();
    const own = await mkdtemp(path.join(tmpdir(), 'ferry-mig-'));
    await writeFile(path.join(own, '0001_ok.sql'), 'create table ok (id int);');
    await writeFile(path.join(own, '0002_bad.sql'), 'create table half (id int); select * from no_such_table;');
    await expect(migrate(pool, schema, [{ name: 'svc', dir: own }])).rejects.toThrow(/0002_bad.sql failed/);
    const status = await migrationStatus(pool, schema, [{ name: 'svc', dir: own }]);
    expect(status.applied).toEqual(['svc/0001_ok.sql']);
    const { rows } = await pool.query(`select to_regclass($1) as t`, [`"${schema}".half`]);
    expect(rows[0].t).toBeNull();
    await rm(own, { recursive: true, force: true });
  });
});
