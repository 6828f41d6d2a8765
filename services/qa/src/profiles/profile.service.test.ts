import { waitFor } from '@ferry/platform/testing';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { actorOf, type QaFixture, qaFixture } from '../testing/qa-fixture.js';

describe('ProfileService', () => {
  let f: QaFixture;
  beforeAll(async () => {
    f = await qaFixture();
  });
  afterAll(() => f?.cleanup());

  const RULES = { required_topics: ['/imu'] };

  async function profileOf(org = uuidv7(), scope: { robot_type?: string; scene_id?: string } = { robot_type: 'arm' }) {
    const admin = actorOf(org, 'admin');
    const profile = await f.tx((trx) => f.profiles.create(admin, { name: 'p', ...scope, rules: RULES }, trx));
    return { admin, profile };
  }

  /** Runs `pending` while `trx` is open and returns once it waits on that transaction's locks (or finished). */
  async function againstOpen(trx: Parameters<QaFixture['backendPid']>[0], pending: Promise<unknown>) {
    let settled = false;
    pending.then(
      () => {
        settled = true;
      },
      () => {
        settled = true;
      },
    );
    const pid = await f.backendPid(trx);
    return waitFor(async () => (settled ? 'went_past' : (await f.blocking(pid)) ? 'waited' : false), {
      intervalMs: 10,
    });
  }

  it('applies the most specific live profile: robot type and scene, then robot type, then scene', async () => {
    const org = uuidv7();
    const scene = uuidv7();
    const { admin, profile: both } = await profileOf(org, { robot_type: 'arm', scene_id: scene });
    const { profile: robot } = await profileOf(org, { robot_type: 'arm' });
    const { profile: onlyScene } = await profileOf(org, { scene_id: scene });
    await profileOf(uuidv7(), { robot_type: 'arm', scene_id: scene }); // another organization's, never chosen
    const best = async (robotType: string | null, sceneId: string) =>
      (await f.profileRepository.bestFor(f.db, org, robotType, sceneId))?.id;

    expect(await best('arm', scene)).toBe(both.id);
    expect(await best('arm', uuidv7())).toBe(robot.id);
    expect(await best('cart', scene)).toBe(onlyScene.id);
    expect(await best(null, scene)).toBe(onlyScene.id);
    expect(await best('cart', uuidv7())).toBeUndefined();
    await f.tx((trx) => f.profiles.delete(admin, both.id, trx));
    expect(await best('arm', scene)).toBe(robot.id); // robot type beats scene
  });

  it('answers not_found for an update racing a delete, and leaves the deleted profile as it was', async () => {
    const { admin, profile } = await profileOf();
    const deleting = await f.db.startTransaction().execute();
    await f.profiles.delete(admin, profile.id, deleting);

    const updating = f.tx((trx) => f.profiles.update(admin, profile.id, { name: 'renamed' }, trx));
    const race = await againstOpen(deleting, updating);
    await deleting.commit().execute();

    expect(race).toBe('waited');
    await expect(updating).rejects.toMatchObject({ code: 'not_found' });
    const row = await f.db.selectFrom('profiles').selectAll().where('id', '=', profile.id).executeTakeFirstOrThrow();
    expect(row.name).toBe('p');
    expect(row.deleted_at).not.toBeNull();
  });

  it('answers not_found for the second of two racing deletes and keeps the first deletion time', async () => {
    const { admin, profile } = await profileOf();
    const first = await f.db.startTransaction().execute();
    const { deleted_at } = await f.profiles.delete(admin, profile.id, first);

    const second = f.tx((trx) => f.profiles.delete(admin, profile.id, trx));
    const race = await againstOpen(first, second);
    await first.commit().execute();

    expect(race).toBe('waited');
    await expect(second).rejects.toMatchObject({ code: 'not_found' });
    const row = await f.db.selectFrom('profiles').selectAll().where('id', '=', profile.id).executeTakeFirstOrThrow();
    expect(row.deleted_at?.toISOString()).toBe(deleted_at);
  });

  it("answers not_found for another organization's profile and changes nothing", async () => {
    const { profile } = await profileOf();
    const stranger = actorOf(uuidv7(), 'admin');
    await expect(f.tx((trx) => f.profiles.update(stranger, profile.id, { name: 'mine' }, trx))).rejects.toMatchObject({
      code: 'not_found',
    });
    await expect(f.tx((trx) => f.profiles.delete(stranger, profile.id, trx))).rejects.toMatchObject({
      code: 'not_found',
    });
    expect(await f.profileRepository.find(f.db, profile.organization_id, profile.id)).toMatchObject({
      name: 'p',
      deleted_at: null,
    });
  });
});
