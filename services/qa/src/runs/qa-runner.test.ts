import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type QaFixture, qaFixture } from '../testing/qa-fixture.js';

describe('QaRunner', () => {
  let f: QaFixture;
  beforeAll(async () => {
    f = await qaFixture();
  });
  afterAll(() => f?.cleanup());

  const runsCounted = async () =>
    ((await f.metrics.registry.getSingleMetric('ferry_qa_runs_total')?.get())?.values ?? []).reduce(
      (sum, v) => sum + v.value,
      0,
    );

  it('counts a run in its metrics only once the run committed', async () => {
    const org = await f.seed(1, { status: 'pending_qa' });
    const { id } = await f.db
      .selectFrom('episodes')
      .select('id')
      .where('organization_id', '=', org)
      .executeTakeFirstOrThrow();
    // The run's transaction fails at COMMIT, after every statement of it succeeded (a deferred constraint).
    await sql`
      create function refuse_run_at_commit() returns trigger language plpgsql as $$
      begin
        if new.requested_by = 'refused-at-commit' then raise exception 'run refused at commit'; end if;
        return null;
      end $$`.execute(f.db);
    await sql`
      create constraint trigger runs_refused_at_commit after insert on runs deferrable initially deferred
      for each row execute function refuse_run_at_commit()`.execute(f.db);
    const before = await runsCounted();
    const refused = f.runner.check({ episodeId: id, trigger: 'manual', requestedBy: 'refused-at-commit' });
    await expect(refused).rejects.toThrow('run refused at commit');
    expect(await f.db.selectFrom('runs').select('id').where('episode_id', '=', id).execute()).toEqual([]);
    expect(await runsCounted()).toBe(before);

    const done = await f.runner.check({ episodeId: id, trigger: 'manual', requestedBy: 'test' });
    expect(done).toMatchObject({ kind: 'finished', status: 'approved' });
    expect(await runsCounted()).toBe(before + 1);
  });
});
