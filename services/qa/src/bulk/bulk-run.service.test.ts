import { waitFor } from '@ferry/platform/testing';
import { type ControlledTransaction, sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { QaDB } from '../database.js';
import { actorOf, type QaFixture, qaFixture } from '../testing/qa-fixture.js';

describe('bulk runs against Postgres', () => {
  let f: QaFixture;
  beforeAll(async () => {
    f = await qaFixture();
  });
  afterAll(() => f?.cleanup());

  async function started(n: number) {
    const org = await f.seed(n);
    const actor = actorOf(org);
    const run = await f.tx((trx) => f.bulk.execute(actor, {}, trx));
    await f.bulkRuns.transition(f.db, run.run_id, ['queued'], 'running');
    return { actor, runId: run.run_id };
  }

  /** Rolls back a transaction a test opened unless it was committed (a failed test must not leave its locks held). */
  const rollback = (trx: ControlledTransaction<QaDB>) =>
    trx.isCommitted || trx.isRolledBack ? Promise.resolve() : trx.rollback().execute();

  /** Lets `pending` run against an open transaction until it either settles or waits on that transaction's locks. */
  async function raceAgainst(pid: number, pending: Promise<unknown>): Promise<'waited' | 'went_past'> {
    let settled = false;
    void pending.then(
      () => {
        settled = true;
      },
      () => {
        settled = true;
      },
    );
    return waitFor(async () => (settled ? 'went_past' : (await f.blocking(pid)) ? 'waited' : false), {
      what: 'the concurrent statement to finish or wait',
      intervalMs: 10,
    });
  }

  describe('BulkRunRepository.count', () => {
    it('leaves an ended run as its terminal event showed it: an item finishing late moves no counter', async () => {
      const { runId } = await started(3);
      await f.tx((trx) => f.bulkRuns.count(trx, runId, 'passed', []));
      const ended = (await f.bulkRuns.transition(f.db, runId, ['running'], 'interrupted'))!;

      const late = await f.tx((trx) => f.bulkRuns.count(trx, runId, 'qa_failed', ['transport@1']));

      expect(late).toBeUndefined();
      expect(await f.bulkRuns.find(f.db, runId)).toEqual(ended);
    });
  });

  describe('BulkRunRepository.handBackTakenOver', () => {
    it('hands an item taken over from a dead worker back for another check when that worker’s episode claim is live, lapsed or swept; leaves one another checker holds to be skipped', async () => {
      const { runId } = await started(4);
      // A worker took all four items and died: its item claims lapsed, and another worker took them over.
      await f.bulkRuns.claimItems(f.db, runId, 'replica-dead', 30_000, 4);
      await sql`update bulk_run_items set claim_expires_at = now() - interval '1 millisecond' where run_id = ${runId}`.execute(
        f.db,
      );
      const items = await f.bulkRuns.claimItems(f.db, runId, 'replica-b', 30_000, 4);
      expect(items.map((i) => i.taken_from)).toEqual(Array(4).fill('replica-dead'));
      const [live, lapsed, swept, elsewhere] = items;
      // Where each episode's claim stands when the taker's check answered "already running" and it asks what now.
      const claim = (item: (typeof items)[number], by: string, expires: string) =>
        sql`update episodes set qa_status = 'qa_running', status_before_claim = 'approved', claim_id = gen_random_uuid(),
              claimed_by = ${by}, claim_expires_at = now() + ${expires}::interval
            where id = ${item.episode_id}`.execute(f.db);
      await claim(live!, 'replica-dead', '1 minute'); // its check has not lapsed yet
      await claim(lapsed!, 'replica-dead', '-1 second'); // it lapsed just after the check saw it live
      // swept: the claim sweeper released it just after the check saw it live (the episode is free)
      await claim(elsewhere!, 'auto-qa-replica', '1 minute'); // another checker holds the episode now

      const answers = [];
      for (const item of items) answers.push(await f.bulkRuns.handBackTakenOver(f.db, item));
      expect(answers).toEqual([true, true, true, false]);

      const rows = await f.db
        .selectFrom('bulk_run_items as i')
        .innerJoin('episodes as e', 'e.id', 'i.episode_id')
        .select(['i.position', 'i.status', 'i.claim_expires_at', 'e.claim_expires_at as episode_claim_expires_at'])
        .where('i.run_id', '=', runId)
        .orderBy('i.position')
        .execute();
      // The live one lapses with the dead worker's episode claim, and is claimed and checked then.
      expect(rows[0]!.claim_expires_at).toEqual(rows[0]!.episode_claim_expires_at);
      // The lapsed and swept ones are up for claiming again at once; the one another checker holds keeps its claim,
      // to be counted skipped by its worker.
      const again = await f.bulkRuns.claimItems(f.db, runId, 'replica-c', 30_000, 4);
      expect(again.map((i) => i.position).sort()).toEqual([lapsed!.position, swept!.position].sort());
      expect(again.map((i) => i.taken_from)).toEqual(['replica-b', 'replica-b']);
      expect(rows[3]).toMatchObject({ status: 'claimed' });
      expect(await f.tx((trx) => f.bulkRuns.finishItem(trx, elsewhere!, 'skipped'))).toBe(true);
    });
  });

  describe('bulk_run_items', () => {
    it('refuses a claimed item without its claim token or expiry (nobody could finish or take it over)', async () => {
      const { runId } = await started(1);
      const claim = (set: ReturnType<typeof sql>) =>
        sql`update bulk_run_items set status = 'claimed', claimed_by = 'w', ${set} where run_id = ${runId}`.execute(
          f.db,
        );
      await expect(claim(sql`claim_expires_at = now() + interval '1 minute'`)).rejects.toMatchObject({
        constraint: 'bulk_run_items_claimed_has_claim',
      });
      await expect(claim(sql`claim_token = gen_random_uuid()`)).rejects.toMatchObject({
        constraint: 'bulk_run_items_claimed_has_claim',
      });
      const [item] = await f.bulkRuns.claimItems(f.db, runId, 'w', 30_000, 1);
      expect(item).toMatchObject({ status: 'claimed', claimed_by: 'w' });
      expect(await f.tx((trx) => f.bulkRuns.finishItem(trx, item!, 'passed'))).toBe(true);
    });
  });

  describe('cancel racing a claim', () => {
    it('a cancel arriving while a claim is open waits for it and counts its items in flight', async () => {
      const { actor, runId } = await started(4);
      const claim = await f.db.startTransaction().execute();
      let items: Awaited<ReturnType<typeof f.bulkRuns.claimItems>>;
      let race: Awaited<ReturnType<typeof raceAgainst>>;
      let answered: Awaited<ReturnType<typeof f.bulk.cancel>>;
      try {
        items = await f.bulkRuns.claimItems(claim, runId, 'replica-a', 30_000, 2);
        expect(items).toHaveLength(2);

        const cancelling = f.tx((trx) => f.bulk.cancel(actor, runId, trx));
        race = await raceAgainst(await f.backendPid(claim), cancelling);
        await claim.commit().execute();
        answered = await cancelling;
      } finally {
        await rollback(claim); // whatever failed above, the run row is not left locked for the tests after
      }

      expect(race).toBe('waited');
      expect(answered.status).toBe('running'); // two items are being checked: it ends when they finish
      expect(answered.cancel_requested_at).not.toBeNull();
      for (const item of items) {
        await f.tx(async (trx) => {
          expect(await f.bulkRuns.finishItem(trx, item, 'passed')).toBe(true);
          expect(await f.bulkRuns.count(trx, runId, 'passed', [])).toMatchObject({ status: 'running' }); // counted: still active
        });
      }
      const ended = await f.tx(async (trx) => f.bulk.finishCancelled(trx, (await f.bulkRuns.find(trx, runId))!));
      expect(ended).toMatchObject({ status: 'cancelled', processed_count: 2, passed_count: 2 });
    });

    it('a claim arriving while a cancel is open waits for it and hands out nothing', async () => {
      const { actor, runId } = await started(4);
      const cancel = await f.db.startTransaction().execute();
      let claiming: ReturnType<typeof f.bulkRuns.claimItems>;
      let race: Awaited<ReturnType<typeof raceAgainst>>;
      try {
        expect((await f.bulk.cancel(actor, runId, cancel)).status).toBe('cancelled'); // nothing was in flight

        claiming = f.bulkRuns.claimItems(f.db, runId, 'replica-a', 30_000, 2);
        race = await raceAgainst(await f.backendPid(cancel), claiming);
        await cancel.commit().execute();
      } finally {
        await rollback(cancel);
      }

      expect(race).toBe('waited');
      expect(await claiming).toEqual([]);
      expect(await f.bulkRuns.inFlight(f.db, runId)).toBe(0);
    });
  });

  describe('two executes racing', () => {
    it('lets one in: the other, past its check for an active run, waits on the partial unique index and is refused naming the first run', async () => {
      const org = await f.seed(3);
      const actor = actorOf(org);
      const first = await f.db.startTransaction().execute();
      let run: Awaited<ReturnType<typeof f.bulk.execute>>;
      let second: ReturnType<typeof f.bulk.execute>;
      let race: Awaited<ReturnType<typeof raceAgainst>>;
      try {
        run = await f.bulk.execute(actor, {}, first);

        // The second's read for an active run cannot see the first's uncommitted row: only the index can stop it.
        second = f.tx((trx) => f.bulk.execute(actor, {}, trx));
        race = await raceAgainst(await f.backendPid(first), second);
        await first.commit().execute();
      } finally {
        await rollback(first);
      }

      expect(race).toBe('waited');
      await expect(second).rejects.toMatchObject({
        code: 'bulk_run_active',
        details: { run_id: run.run_id, status: 'queued' },
      });
      const runs = await f.db.selectFrom('bulk_runs').select('id').where('organization_id', '=', org).execute();
      expect(runs.map((r) => r.id)).toEqual([run.run_id]);
    });
  });

  describe('BulkRunService.preview', () => {
    it('counts what a run would skip without loading the episodes: live claims, then statuses a person set', async () => {
      const org = await f.seed(6);
      await f.seed(2, { org, status: 'rejected' });
      await f.seed(1, { org, status: 'needs_inspection' });
      // Two episodes being checked now (one of them rejected: counted as running, as the run would skip it for
      // that), one whose claim lapsed (eligible again).
      await sql`
        update episodes set claim_id = gen_random_uuid(), claimed_by = 'elsewhere',
               claim_expires_at = now() + interval '1 minute'
        where id in (select id from episodes where organization_id = ${org} and qa_status = 'approved' limit 1)
           or id in (select id from episodes where organization_id = ${org} and qa_status = 'rejected' limit 1)`.execute(
        f.db,
      );
      await sql`
        update episodes set claim_id = gen_random_uuid(), claimed_by = 'gone',
               claim_expires_at = now() - interval '1 minute'
        where id in (select id from episodes where organization_id = ${org} and qa_status = 'approved' and claim_id is null
                     limit 1)`.execute(f.db);
      await f.seed(4); // another organization's episodes are not counted

      const preview = await f.bulk.preview(actorOf(org), {});
      expect(preview).toMatchObject({
        matched_count: 9,
        eligible_count: 5,
        skipped: { already_running: 2, protected_status: 2 },
      });
      expect(preview.warnings).toHaveLength(2);
      const filtered = await f.bulk.preview(actorOf(org), { qa_status: ['rejected'] });
      expect(filtered).toMatchObject({
        matched_count: 2,
        eligible_count: 0,
        skipped: { already_running: 1, protected_status: 1 },
      });
    });
  });
});
