import { qaEpisodeEvents } from '@ferry/contracts';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type QaFixture, qaFixture } from '../testing/qa-fixture.js';

describe('ClaimSweeper', () => {
  let f: QaFixture;
  beforeAll(async () => {
    f = await qaFixture();
  });
  afterAll(() => f?.cleanup());

  /** The org’s episodes, oldest first. */
  async function episodes(org: string) {
    const rows = await f.db
      .selectFrom('episodes')
      .select('id')
      .where('organization_id', '=', org)
      .orderBy('episode_created_at')
      .execute();
    return rows.map((r) => r.id);
  }
  const claim = (id: string, status: string, before: string, expires: string) =>
    sql`update episodes set qa_status = ${status}, claim_id = gen_random_uuid(), claimed_by = 'dead-replica',
          claim_expires_at = now() + ${expires}::interval, status_before_claim = ${before}
        where id = ${id}`.execute(f.db);
  const row = (id: string) => f.db.selectFrom('episodes').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  const changes = (id: string) =>
    f.db
      .selectFrom('outbox')
      .select('payload')
      .where('event_type', '=', qaEpisodeEvents.statusChanged.type)
      .where(sql<boolean>`payload->>'episode_id' = ${id}`)
      .execute();

  it('gives a dead checker’s lapsed claim back with the status it had, leaves live claims and a person’s status alone', async () => {
    const org = await f.seed(3, { status: 'pending_qa' });
    const [lapsed, live, reviewed] = await episodes(org);
    await claim(lapsed!, 'qa_running', 'pending_qa', '-1 second');
    await claim(live!, 'qa_running', 'pending_qa', '1 minute');
    // A person rejected this one while the (now dead) check held it.
    await claim(reviewed!, 'rejected', 'rejected', '-1 second');

    const released = await f.sweeper().sweep();

    expect(released).toBe(2);
    expect(await row(lapsed!)).toMatchObject({ qa_status: 'pending_qa', claim_id: null, claim_expires_at: null });
    expect((await changes(lapsed!)).map((c) => c.payload)).toMatchObject([
      { from: 'qa_running', to: 'pending_qa', cause: 'claim_released', run_id: null },
    ]);
    expect(await row(live!)).toMatchObject({ qa_status: 'qa_running', claimed_by: 'dead-replica' });
    expect(await changes(live!)).toEqual([]);
    expect(await row(reviewed!)).toMatchObject({ qa_status: 'rejected', claim_id: null, status_before_claim: null });
    expect(await changes(reviewed!)).toEqual([]);
    // The released episode can be checked again at once.
    const outcome = await f.runner.check({ episodeId: lapsed!, trigger: 'auto', requestedBy: 'auto-qa' });
    expect(outcome).toMatchObject({ kind: 'finished', status: 'approved' });
  });
});
