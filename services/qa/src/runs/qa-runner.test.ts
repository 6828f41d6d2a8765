import { qaEpisodeEvents } from '@ferry/contracts';
import { waitFor } from '@ferry/platform/testing';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { actorOf, type QaFixture, qaFixture } from '../testing/qa-fixture.js';

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
    const [id] = (await f.episodeIds(org)) as [string];
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

  /** One pending episode of a new organization. */
  async function pendingEpisode(): Promise<{ org: string; id: string }> {
    const org = await f.seed(1, { status: 'pending_qa' });
    const [id] = (await f.episodeIds(org)) as [string];
    return { org, id };
  }
  const row = (id: string) => f.db.selectFrom('episodes').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  const runsOf = (id: string) => f.db.selectFrom('runs').selectAll().where('episode_id', '=', id).execute();
  const statusChanges = (id: string) => f.outboxEvents(qaEpisodeEvents.statusChanged, id);
  /** Settles to true once `p` settles: lets a test see that a call is still in flight. */
  const settled = (p: Promise<unknown>) => {
    let done = false;
    void p.then(
      () => {
        done = true;
      },
      () => {
        done = true;
      },
    );
    return () => done;
  };

  describe('a person’s status against automated runs', () => {
    it('skips auto QA of an episode a person already reviewed: no run, no claim, the person’s status kept', async () => {
      const { org, id } = await pendingEpisode();
      await f.tx((trx) => f.episodes.review(actorOf(org), id, { decision: 'reject' }, trx));
      const before = await statusChanges(id);

      // The auto-check consumer's path: project (a no-op here) and check; it resolves, so the message is acked.
      await expect(f.handlers.onEpisodeCreated(await f.createdEvent(id))).resolves.toBeUndefined();

      expect(await runsOf(id)).toEqual([]);
      expect(await row(id)).toMatchObject({ qa_status: 'rejected', claim_id: null, last_run_id: null });
      expect(await statusChanges(id)).toEqual(before);
      expect(before).toMatchObject([{ from: 'pending_qa', to: 'rejected', cause: 'review' }]);
    });

    it('keeps the status a person sets while an auto check holds the episode, and records the check', async () => {
      const { org, id } = await pendingEpisode();
      const release = f.holdReads();
      const auto = f.runner.check({ episodeId: id, trigger: 'auto', requestedBy: 'auto-qa' });
      try {
        await waitFor(async () => (await row(id)).claim_id !== null, { what: 'the auto check to claim the episode' });
        const review = await f.tx((trx) => f.episodes.review(actorOf(org), id, { decision: 'reject' }, trx));
        // The race happened: the person decided while the check held the episode.
        expect(review).toMatchObject({ from_status: 'qa_running', to_status: 'rejected' });
      } finally {
        release();
      }
      const outcome = await auto;
      expect(outcome).toMatchObject({ kind: 'finished', status: 'rejected', run: { trigger: 'auto', passed: true } });
      expect(await row(id)).toMatchObject({ qa_status: 'rejected', claim_id: null });
      expect((await runsOf(id)).map((r) => [r.trigger, r.status_after])).toEqual([['auto', 'rejected']]);
      expect((await statusChanges(id)).map((c) => `${c.from}→${c.to} (${c.cause})`)).toEqual([
        'pending_qa→qa_running (auto)',
        'qa_running→rejected (review)',
      ]);
    });
  });

  describe('the time limit of an auto or manual check (QA_CHECK_TIMEOUT_MS)', () => {
    /** Every stream opened from now on by `open`, and whether all of them were closed. */
    const newStreams = (opened: readonly { destroyed: boolean }[]) => {
      const from = opened.length;
      return () => opened.slice(from);
    };

    it('abandons an auto check and a recheck whose read never ends: read closed, claim released, nothing recorded, retried as a storage error', async () => {
      const replica = f.replica({ QA_WORKER_ID: 'replica-limited', QA_CHECK_TIMEOUT_MS: 1_000 });
      const { id } = await pendingEpisode();
      const approved = await f.seed(1);
      const { id: checked } = await f.db
        .selectFrom('episodes')
        .select('id')
        .where('organization_id', '=', approved)
        .executeTakeFirstOrThrow();
      const opened = newStreams(f.hangReads());
      const timedOut = {
        code: 'storage_error',
        message: 'no result within 1000 ms (QA_CHECK_TIMEOUT_MS): the check was abandoned; nothing was recorded',
        details: { reason: 'timed_out', limit_ms: 1_000 },
      };
      try {
        // qa__auto-check's handler, and qa__auto-recheck's over an approved episode: each rejects with a transient
        // code (the consumer naks and redelivers it later), not a QA verdict.
        await expect(replica.handlers.onEpisodeCreated(await f.createdEvent(id))).rejects.toMatchObject(timedOut);
        await expect(
          replica.handlers.onAutoCheckRequested({
            episode_id: checked,
            organization_id: approved,
            reason: 'robot_type_known',
            redrive: 0,
            requested_at: new Date().toISOString(),
          }),
        ).rejects.toMatchObject(timedOut);
      } finally {
        f.hangReads(false);
      }
      expect(opened()).toHaveLength(2);
      expect(opened().every((s) => s.destroyed)).toBe(true);
      expect(await row(id)).toMatchObject({ qa_status: 'pending_qa', claim_id: null, last_run_id: null });
      expect(await row(checked)).toMatchObject({ qa_status: 'approved', claim_id: null, last_run_id: null });
      expect(await runsOf(id)).toEqual([]);
      expect(await runsOf(checked)).toEqual([]);
      expect((await statusChanges(id)).map((c) => `${c.from}→${c.to} (${c.cause})`)).toEqual([
        'pending_qa→qa_running (auto)',
        'qa_running→pending_qa (auto)',
      ]);
      // The redelivery, with the store answering again, checks it.
      await replica.handlers.onEpisodeCreated(await f.createdEvent(id));
      expect(await row(id)).toMatchObject({ qa_status: 'approved', claim_id: null });
    });

    it('answers a manual run whose read never ends with storage_error (timed_out), nothing recorded, its slot given back', async () => {
      const replica = f.replica({
        QA_WORKER_ID: 'replica-limited-manual',
        QA_CHECK_TIMEOUT_MS: 1_000,
        QA_MANUAL_CONCURRENCY: 1,
      });
      const org = await f.seed(1);
      const [id] = (await f.episodeIds(org)) as [string];
      const opened = newStreams(f.hangReads());
      try {
        await expect(replica.episodes.run(actorOf(org), id)).rejects.toMatchObject({
          code: 'storage_error',
          message: 'no result within 1000 ms (QA_CHECK_TIMEOUT_MS): the check was abandoned; nothing was recorded',
          details: { episode_id: id, reason: 'timed_out', limit_ms: 1_000, retry_after_seconds: 5 },
        });
      } finally {
        f.hangReads(false);
      }
      expect(opened()).toHaveLength(1);
      expect(opened()[0]!.destroyed).toBe(true);
      expect(await row(id)).toMatchObject({ qa_status: 'approved', claim_id: null, last_run_id: null });
      expect(await runsOf(id)).toEqual([]);
      // Its one manual slot was given back: the next run goes through.
      expect(await replica.episodes.run(actorOf(org), id)).toMatchObject({ trigger: 'manual', passed: true });
    });
  });

  describe('the claim', () => {
    it('lets one of two concurrent checks of an episode run and refuses the other as already running', async () => {
      const { id } = await pendingEpisode();
      const release = f.holdReads();
      const first = f.runner.check({ episodeId: id, trigger: 'manual', requestedBy: 'first' });
      const second = f.runner.check({ episodeId: id, trigger: 'manual', requestedBy: 'second' });
      const firstDone = settled(first);
      const secondDone = settled(second);
      let refused: Awaited<typeof first>;
      try {
        await waitFor(() => firstDone() || secondDone(), { what: 'one of the two checks to answer' });
        refused = await (firstDone() ? first : second);
        // They overlapped: one was refused while the other still held the episode, in the middle of its read.
        expect(refused).toEqual({ kind: 'skipped', reason: 'already_running' });
        expect([firstDone(), secondDone()].filter(Boolean)).toHaveLength(1);
        expect(await row(id)).toMatchObject({ qa_status: 'qa_running', claimed_by: 'fixture-replica' });
      } finally {
        release();
      }
      const outcomes = await Promise.all([first, second]);
      expect(outcomes.filter((o) => o.kind === 'finished')).toHaveLength(1);
      expect(outcomes.filter((o) => o.kind === 'skipped')).toEqual([refused]);
      const runs = await runsOf(id);
      expect(runs).toHaveLength(1);
      expect(await row(id)).toMatchObject({ qa_status: 'approved', claim_id: null, last_run_id: runs[0]!.id });
    });

    it('lets another check take over the lapsed claim of a stalled but live checker, which then persists nothing', async () => {
      const { id } = await pendingEpisode();
      const stalled = f.replica({ QA_WORKER_ID: 'stalled-replica' });
      const taker = f.replica({ QA_WORKER_ID: 'taker-replica' });
      const expired = async (m: typeof taker.metrics) =>
        (await m.registry.getSingleMetric('ferry_qa_claims_expired_total')?.get())?.values[0]?.value ?? 0;
      // The stalled replica's renewals fail (its database calls hang up, its process lives on).
      await sql`
        create function stall_renewals() returns trigger language plpgsql as $$
        begin raise exception 'replica stalled'; end $$`.execute(f.db);
      await sql`
        create trigger stalled_renewals before update on episodes for each row
        when (old.claimed_by = 'stalled-replica' and new.claim_id = old.claim_id
              and new.claim_expires_at > old.claim_expires_at)
        execute function stall_renewals()`.execute(f.db);
      const release = f.holdReads();
      try {
        const first = stalled.runner.check({ episodeId: id, trigger: 'auto', requestedBy: 'auto-qa' });
        const firstDone = settled(first);
        await waitFor(async () => (await row(id)).claimed_by === 'stalled-replica', {
          what: 'the stalled replica to claim the episode',
        });
        // Its lease runs out unrenewed: moved past its expiry rather than waited for.
        await sql`update episodes set claim_expires_at = now() - interval '1 second' where id = ${id}`.execute(f.db);

        const second = taker.runner.check({ episodeId: id, trigger: 'auto', requestedBy: 'auto-qa' });
        await waitFor(async () => (await row(id)).claimed_by === 'taker-replica', {
          what: 'the other replica to take the lapsed claim over',
        });
        expect(firstDone()).toBe(false); // the first checker is still alive, in the middle of its read
        expect(await expired(taker.metrics)).toBe(1);
        release();

        expect(await first).toEqual({ kind: 'skipped', reason: 'claim_lost' });
        expect(await second).toMatchObject({ kind: 'finished', status: 'approved' });
      } finally {
        release();
        await sql`drop trigger stalled_renewals on episodes`.execute(f.db);
        await sql`drop function stall_renewals()`.execute(f.db);
      }
      const runs = await runsOf(id);
      expect(runs.map((r) => r.requested_by)).toEqual(['auto-qa']);
      expect(await row(id)).toMatchObject({ qa_status: 'approved', claim_id: null, last_run_id: runs[0]!.id });
      expect(await expired(stalled.metrics)).toBe(0);
      // One claim (the first), no release, one finish: the takeover kept the episode qa_running.
      expect((await statusChanges(id)).map((c) => `${c.from}→${c.to} (${c.cause})`)).toEqual([
        'pending_qa→qa_running (auto)',
        'qa_running→approved (auto)',
      ]);
    });
  });
});
