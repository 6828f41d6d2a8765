import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { migrate, PLATFORM_MIGRATIONS } from '@ferry/platform';
import { TestInfra } from '@ferry/platform/testing';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QA_MIGRATIONS } from './migrations.js';

/**
 * The bulk migrations were written as 0005 and 0006 on a branch, then renumbered 0006 and 0007 after main's 0005. A
 * database migrated on that branch has them applied under the old names; migrating it with the renumbered files must
 * pass, not fail on columns and a constraint it already has.
 */
describe('QA migrations', () => {
  let infra: TestInfra;
  let pool: pg.Pool;
  let branchDir: string;

  beforeAll(async () => {
    infra = await TestInfra.create({ provision: false });
    pool = new pg.Pool({ connectionString: infra.databaseUrl, max: 1 });
    // The QA migrations as that branch had them: 0001–0004 as today, then its 0005 and 0006 as they were applied.
    branchDir = await mkdtemp(path.join(tmpdir(), 'ferry-qa-branch-migrations-'));
    for (const file of (await readdir(QA_MIGRATIONS.dir)).filter((f) => f < '0005')) {
      await writeFile(path.join(branchDir, file), await readFile(path.join(QA_MIGRATIONS.dir, file)));
    }
    await writeFile(
      path.join(branchDir, '0005_bulk_item_errors.sql'),
      `alter table bulk_run_items add column error text;
       alter table bulk_run_items add constraint bulk_run_items_error_only_when_processing_failed
         check (error is null or outcome = 'processing_failed');`,
    );
    await writeFile(
      path.join(branchDir, '0006_progress_paced_by_publication.sql'),
      `alter table bulk_runs add column last_progress_event_id uuid;
       alter table bulk_runs add column last_progress_published_at timestamptz;`,
    );
  });
  afterAll(async () => {
    await pool?.end();
    await infra?.cleanup();
    if (branchDir) await rm(branchDir, { recursive: true, force: true });
  });

  it('migrates a database that applied the bulk migrations under their branch names (0005, 0006) without failing', async () => {
    const schema = infra.schema('qa');
    const branch = { name: 'qa', dir: branchDir };
    expect(await migrate(pool, schema, [PLATFORM_MIGRATIONS, branch])).toContain('qa/0005_bulk_item_errors.sql');

    const applied = await migrate(pool, schema, [PLATFORM_MIGRATIONS, QA_MIGRATIONS]);

    expect(applied).toEqual([
      'qa/0005_auto_check_redrive.sql',
      'qa/0006_bulk_item_errors.sql',
      'qa/0007_progress_paced_by_publication.sql',
    ]);
    // One constraint, still enforced and validated.
    const { rows } = await pool.query<{ convalidated: boolean }>(
      `select c.convalidated from pg_constraint c join pg_class t on t.oid = c.conrelid
       join pg_namespace n on n.oid = t.relnamespace
       where n.nspname = $1 and t.relname = 'bulk_run_items'
         and c.conname = 'bulk_run_items_error_only_when_processing_failed'`,
      [schema],
    );
    expect(rows).toEqual([{ convalidated: true }]);
  });
});
