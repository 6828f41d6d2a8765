import { waitFor } from '@ferry/platform/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  defectCorpus,
  GOOD_PROFILE,
  goodSidecar,
  writeRecording,
} from '../../services/qa/src/checks/testing/mcap-corpus.js';
import { deviceWorld } from '../support/device-world.js';
import { sidecarOf, uploadRecording } from '../support/recordings.js';
import { System } from '../support/system.js';

/** QA through real processes: every new episode checked without anyone asking (DESIGN §7). */
describe('automatic QA of new episodes', () => {
  let system: System;
  beforeAll(async () => {
    system = await System.create();
    await system.start(['production', 'transfer', 'qa', 'gateway']);
  }, 120_000);
  afterAll(() => system?.shutdown());

  async function qaStatusOf(w: Awaited<ReturnType<typeof deviceWorld>>, episodeId: string, until: string[]) {
    return waitFor(
      async () => {
        const res = await w.operator('GET', `/qa/episodes/${episodeId}`);
        return res.status === 200 && until.includes(res.body.qa_status) && res.body;
      },
      { timeoutMs: 30_000, what: `episode ${episodeId} to reach ${until.join('|')}` },
    );
  }

  it('approves a good recording on its own, and production’s episode shows the same status', async () => {
    const w = await deviceWorld(system);
    const mcap = await writeRecording({ compression: 'zstd' });
    const upload = await uploadRecording(w, mcap, { sidecar: sidecarOf(goodSidecar(mcap)) });
    expect(upload.status).toBe('acknowledged');
    const qa = await qaStatusOf(w, upload.episode_id!, ['approved', 'failed']);
    expect(qa).toMatchObject({ qa_status: 'approved', failed_checks: [], robot_type: 'arm-v1' });
    const history = await w.operator('GET', `/episodes/${upload.episode_id}/qa/runs`);
    expect(history.body.items).toHaveLength(1);
    const run = history.body.items[0].run;
    expect(run).toMatchObject({ trigger: 'auto', passed: true, status_after: 'approved' });
    expect(run.results.map((r: { name: string; status: string }) => `${r.name}:${r.status}`)).toEqual([
      'transport:passed',
      'mcap_integrity:passed',
      'not_empty:passed',
      'log_time_order:passed',
      'sidecar_consistency:passed',
      'profile:skipped',
    ]);
    await waitFor(
      async () => (await w.operator('GET', `/episodes/${upload.episode_id}`)).body.qa_status === 'approved',
      {
        timeoutMs: 15_000,
        what: 'production’s read copy',
      },
    );
  });

  it('fails a damaged recording with a detail that names the place', async () => {
    const w = await deviceWorld(system);
    const defect = (await defectCorpus()).find((d) => d.caughtBy?.check === 'log_time_order')!;
    const upload = await uploadRecording(w, defect.bytes);
    const qa = await qaStatusOf(w, upload.episode_id!, ['approved', 'failed']);
    expect(qa.qa_status).toBe('failed');
    expect(qa.failed_checks).toContain('log_time_order@1');
    const history = await w.operator('GET', `/episodes/${upload.episode_id}/qa/runs`);
    const result = history.body.items[0].run.results.find((r: { name: string }) => r.name === 'log_time_order');
    for (const text of defect.caughtBy!.details) expect(result.details).toContain(text);
    const attention = await w.operator('GET', '/qa/episodes');
    expect(attention.body.items.map((e: { id: string }) => e.id)).toContain(upload.episode_id);
    const byCheck = await w.operator('GET', '/qa/episodes?check_failed=log_time_order');
    expect(byCheck.body.items.map((e: { id: string }) => e.id)).toEqual([upload.episode_id]);
    await waitFor(async () => (await w.operator('GET', `/episodes/${upload.episode_id}`)).body.qa_status === 'failed', {
      timeoutMs: 15_000,
      what: 'production’s read copy to show failed',
    });
    const failedInProduction = await w.operator('GET', '/episodes?qa_status=failed');
    expect(failedInProduction.body.items.map((e: { id: string }) => e.id)).toEqual([upload.episode_id]);
  });

  it('checks against the profile of the device’s robot type, and keeps a person’s review against later runs', async () => {
    const w = await deviceWorld(system);
    const profile = await w.admin('POST', '/qa/profiles', {
      name: 'arm needs wrist cam',
      robot_type: 'arm-v1',
      rules: { ...GOOD_PROFILE, required_topics: [...GOOD_PROFILE.required_topics, '/camera/wrist'] },
    });
    expect(profile.status).toBe(201);
    try {
      const mcap = await writeRecording();
      const upload = await uploadRecording(w, mcap, { sidecar: sidecarOf(goodSidecar(mcap)) });
      const qa = await qaStatusOf(w, upload.episode_id!, ['approved', 'failed']);
      expect(qa).toMatchObject({ qa_status: 'failed', failed_checks: ['profile@1'] });
      const review = await w.operator('POST', `/episodes/${upload.episode_id}/qa/review`, {
        decision: 'approve',
        note: 'wrist cam was not mounted for this order',
      });
      expect(review.status).toBe(201);
      expect(review.body).toMatchObject({ from_status: 'failed', to_status: 'inspector_approved' });
      // A manual run records its results but never overrides a person's decision.
      const manual = await w.operator('POST', `/episodes/${upload.episode_id}/qa/runs`);
      expect(manual.status).toBe(201);
      expect(manual.body).toMatchObject({ trigger: 'manual', passed: false, status_after: 'inspector_approved' });
      expect((await w.operator('GET', `/qa/episodes/${upload.episode_id}`)).body.qa_status).toBe('inspector_approved');
      const history = await w.operator('GET', `/episodes/${upload.episode_id}/qa/runs`);
      expect(history.body.items.map((i: { kind: string }) => i.kind)).toEqual(['run', 'review', 'run']);
      expect(history.body.items[1].review).toMatchObject({
        reviewer: 'operator-test',
        note: 'wrist cam was not mounted for this order',
      });
      await waitFor(
        async () => (await w.operator('GET', `/episodes/${upload.episode_id}`)).body.qa_status === 'inspector_approved',
        { timeoutMs: 15_000 },
      );
    } finally {
      await w.admin('DELETE', `/qa/profiles/${profile.body.id}`);
    }
  });
});
