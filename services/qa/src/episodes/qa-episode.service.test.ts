import { qaEpisodeEvents } from '@ferry/contracts';
import { waitFor } from '@ferry/platform/testing';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { actorOf, type QaFixture, qaFixture } from '../testing/qa-fixture.js';

describe('QaEpisodeService reviews', () => {
  let f: QaFixture;
  beforeAll(async () => {
    f = await qaFixture();
  });
  afterAll(() => f?.cleanup());

  it('stamps a review that waited for the episode after the change it waited for: production’s copy and the history end on the status QA has', async () => {
    const org = await f.seed(1);
    const actor = actorOf(org);
    const [id] = (await f.episodeIds(org)) as [string];
    // The later review's transaction begins first (a command's transaction opens before it reaches the
    // episode), then waits for the episode row that the other review holds.
    const late = await f.db.startTransaction().execute();
    await new Promise((r) => setTimeout(r, 20));
    const first = await f.db.startTransaction().execute();
    try {
      await f.episodes.review(actor, id, { decision: 'reject' }, first);
      const waiting = f.episodes.review(actor, id, { decision: 'approve' }, late);
      const pid = await f.backendPid(first);
      await waitFor(() => f.blocking(pid), { what: 'the later review to wait for the episode', intervalMs: 10 });
      await first.commit().execute();
      await waiting;
      await late.commit().execute();
    } finally {
      // A failure above must not leave the episode locked for the tests after.
      for (const trx of [first, late]) if (!trx.isCommitted && !trx.isRolledBack) await trx.rollback().execute();
    }

    const episode = await f.episodes.get(actor, id);
    expect(episode.qa_status).toBe('inspector_approved');
    // Production keeps the change with the latest changed_at (events may arrive out of order).
    const changes = await f.db
      .selectFrom('outbox')
      .select('payload')
      .where('event_type', '=', qaEpisodeEvents.statusChanged.type)
      .where(sql<boolean>`payload->>'episode_id' = ${id}`)
      .execute();
    const payloads = changes.map((c) => c.payload as { to: string; changed_at: string });
    expect(payloads.map((p) => p.to).sort()).toEqual(['inspector_approved', 'rejected']);
    const newest = payloads.reduce((a, b) => (Date.parse(b.changed_at) > Date.parse(a.changed_at) ? b : a));
    expect(newest.to).toBe('inspector_approved');
    expect(episode.status_changed_at).toBe(newest.changed_at);
    // The history, newest first, shows the review that decided last on top.
    const { items } = await f.episodes.history(actor, id);
    expect(items.map((i) => i.kind === 'review' && i.review.to_status)).toEqual(['inspector_approved', 'rejected']);
  });
});
