import { type Kysely, sql } from 'kysely';
import { v7 as uuidv7 } from 'uuid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { System } from '../support/system.js';

/**
 * The QA routes as people use them, through the gateway and a real QA process: what the list shows (by default
 * and filtered) and who may do what. Episodes are written straight into QA's projection, each with the fields a
 * filter reads, so every filter is seen to keep and to drop.
 */
describe('QA routes', () => {
  let system: System;
  let db: Kysely<any>;
  beforeAll(async () => {
    system = await System.create();
    await system.start(['qa', 'gateway']);
    db = system.infra.database('qa').db;
  }, 120_000);
  afterAll(() => system?.shutdown());

  interface Seeded {
    status?: string;
    scene?: string;
    device?: string;
    robotType?: string | null;
    createdAt?: string;
    failedChecks?: string[];
  }

  /** One episode of `org` in QA's projection; answers its id. */
  async function seed(org: string, e: Seeded = {}): Promise<string> {
    const id = uuidv7();
    const mcap = { object_key: `qa-routes/${id}.mcap`, size_bytes: 1, sha256: '0'.repeat(64) };
    await sql`
      insert into episodes (id, organization_id, task_id, order_id, scene_id, batch_id, device_id, robot_type,
                            upload_id, mcap, episode_created_at, qa_status, failed_checks)
      values (${id}, ${org}, gen_random_uuid(), gen_random_uuid(), ${e.scene ?? uuidv7()}, gen_random_uuid(),
              ${e.device ?? 'arm-1'}, ${e.robotType === undefined ? 'arm-v1' : e.robotType}, gen_random_uuid(),
              ${JSON.stringify(mcap)}::jsonb, ${e.createdAt ?? new Date().toISOString()}, ${e.status ?? 'pending_qa'},
              ${e.failedChecks ?? []})`.execute(db);
    return id;
  }

  async function as(org: string, role: 'admin' | 'operator' | 'viewer') {
    return system.client(await system.token(org, role));
  }

  /** The ids a list answers (one page is enough here), sorted for comparison. */
  async function listed(client: Awaited<ReturnType<typeof as>>, query = ''): Promise<string[]> {
    const res = await client('GET', `/qa/episodes${query}`);
    expect(res.status).toBe(200);
    expect(res.body.next_cursor).toBeNull();
    return res.body.items.map((e: { id: string }) => e.id).sort();
  }
  const sorted = (...ids: string[]) => [...ids].sort();

  describe('GET /qa/episodes', () => {
    it('lists by default what needs a person’s attention: pending_qa, failed and needs_inspection, never what is decided or running', async () => {
      const org = uuidv7();
      const ids = Object.fromEntries(
        await Promise.all(
          ['pending_qa', 'qa_running', 'approved', 'failed', 'needs_inspection', 'inspector_approved', 'rejected'].map(
            async (status) => [status, await seed(org, { status })] as const,
          ),
        ),
      );
      await seed(uuidv7(), { status: 'failed' }); // another organization's
      const viewer = await as(org, 'viewer');

      expect(await listed(viewer)).toEqual(sorted(ids.pending_qa!, ids.failed!, ids.needs_inspection!));
      expect(await listed(viewer, '?status=all')).toEqual(sorted(...Object.values(ids)));
      expect(await listed(viewer, '?status=approved,inspector_approved,rejected')).toEqual(
        sorted(ids.approved!, ids.inspector_approved!, ids.rejected!),
      );
      expect(await listed(viewer, '?status=qa_running')).toEqual([ids.qa_running]);
    });

    it('filters by scene, device, robot type, created range and failed check, each keeping only what matches', async () => {
      const org = uuidv7();
      const scene = uuidv7();
      const day = (d: number) => new Date(Date.UTC(2025, 0, d)).toISOString();
      const inScene = await seed(org, { scene, createdAt: day(1) });
      const onDevice = await seed(org, { device: 'arm-7', createdAt: day(2) });
      const otherRobot = await seed(org, { robotType: 'humanoid-v2', createdAt: day(3) });
      const noRobot = await seed(org, { robotType: null, createdAt: day(4) });
      const integrity = await seed(org, { status: 'failed', failedChecks: ['mcap_integrity@1'], createdAt: day(5) });
      const profile = await seed(org, {
        status: 'failed',
        failedChecks: ['profile@1', 'not_empty@1'],
        createdAt: day(6),
      });
      const operator = await as(org, 'operator');
      const all = '?status=all';

      expect(await listed(operator, `${all}&scene_id=${scene}`)).toEqual([inScene]);
      expect(await listed(operator, `${all}&device_id=arm-7`)).toEqual([onDevice]);
      expect(await listed(operator, `${all}&robot_type=humanoid-v2`)).toEqual([otherRobot]);
      expect(await listed(operator, `${all}&robot_type=arm-v1`)).toEqual(sorted(inScene, onDevice, integrity, profile));
      // created_from is inclusive, created_to exclusive.
      expect(await listed(operator, `${all}&created_from=${day(2)}&created_to=${day(4)}`)).toEqual(
        sorted(onDevice, otherRobot),
      );
      expect(await listed(operator, `${all}&created_from=${day(6)}`)).toEqual([profile]);
      expect(await listed(operator, `${all}&created_to=${day(2)}`)).toEqual([inScene]);
      // A check by name (any version) or by name@version.
      expect(await listed(operator, `${all}&check_failed=mcap_integrity`)).toEqual([integrity]);
      expect(await listed(operator, `${all}&check_failed=not_empty@1`)).toEqual([profile]);
      expect(await listed(operator, `${all}&check_failed=not_empty@2`)).toEqual([]);
      // Filters combine with each other and with the default statuses.
      expect(await listed(operator, '?check_failed=profile')).toEqual([profile]);
      expect(await listed(operator, `?robot_type=arm-v1&created_from=${day(5)}`)).toEqual(sorted(integrity, profile));
      expect(await listed(operator)).toEqual(sorted(inScene, onDevice, otherRobot, noRobot, integrity, profile));
    });

    it('answers a bad filter 400 naming it', async () => {
      const viewer = await as(uuidv7(), 'viewer');
      for (const [query, field] of [
        ['?status=done', 'query.status'],
        ['?check_failed=Integrity!', 'query.check_failed'],
        ['?created_from=yesterday', 'query.created_from'],
        ['?scene_id=kitchen', 'query.scene_id'],
      ] as const) {
        const res = await viewer('GET', `/qa/episodes${query}`);
        expect(res.status).toBe(400);
        expect(res.headers.get('content-type')).toBe('application/problem+json');
        expect(res.body.code).toBe('validation_failed');
        expect(res.body.errors.map((e: { path: string }) => e.path)).toContain(field);
      }
    });
  });

  describe('roles', () => {
    const rules = { required_topics: ['/camera/color'] };

    it('lets only an admin create, update or delete a profile: an operator gets 403 and changes nothing', async () => {
      const org = uuidv7();
      const admin = await as(org, 'admin');
      const operator = await as(org, 'operator');
      const created = await admin('POST', '/qa/profiles', { name: 'arm', robot_type: 'arm-v1', rules });
      expect(created.status).toBe(201);
      const id = created.body.id;

      const attempts = [
        await operator('POST', '/qa/profiles', { name: 'humanoid', robot_type: 'humanoid-v2', rules }),
        await operator('PATCH', `/qa/profiles/${id}`, { name: 'renamed', rules: { required_topics: ['/imu'] } }),
        await operator('DELETE', `/qa/profiles/${id}`),
      ];
      for (const res of attempts) {
        expect(res.status).toBe(403);
        expect(res.headers.get('content-type')).toBe('application/problem+json');
        expect(res.body).toMatchObject({ code: 'forbidden', status: 403 });
      }
      const list = await operator('GET', '/qa/profiles');
      expect(list.status).toBe(200);
      expect(list.body.items).toEqual([created.body]);

      // The same requests from an admin go through.
      expect((await admin('PATCH', `/qa/profiles/${id}`, { name: 'renamed' })).status).toBe(200);
      expect((await admin('DELETE', `/qa/profiles/${id}`)).status).toBe(204);
    });

    it('lets a viewer read QA but not review an episode or run its checks (403, nothing recorded)', async () => {
      const org = uuidv7();
      const id = await seed(org, { status: 'failed', failedChecks: ['profile@1'] });
      const viewer = await as(org, 'viewer');

      const review = await viewer('POST', `/episodes/${id}/qa/review`, { decision: 'approve' });
      const run = await viewer('POST', `/episodes/${id}/qa/runs`);
      for (const res of [review, run]) {
        expect(res.status).toBe(403);
        expect(res.body).toMatchObject({ code: 'forbidden', status: 403 });
      }
      const episode = await viewer('GET', `/qa/episodes/${id}`);
      expect(episode.status).toBe(200);
      expect(episode.body).toMatchObject({ qa_status: 'failed', last_run_id: null });
      const history = await viewer('GET', `/episodes/${id}/qa/runs`);
      expect(history.status).toBe(200);
      expect(history.body.items).toEqual([]);
      // An operator may review.
      const operator = await as(org, 'operator');
      expect((await operator('POST', `/episodes/${id}/qa/review`, { decision: 'approve' })).status).toBe(201);
    });
  });
});
