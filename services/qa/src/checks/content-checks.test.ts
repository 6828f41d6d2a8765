import { QaProfile } from '@ferry/contracts';
import type { McapTypes } from '@mcap/core';
import { describe, expect, it } from 'vitest';
import { logTimeOrderCheck } from './log-time-order.check.js';
import { scanMcap } from './mcap-scan.js';
import { profileCheck } from './profile.check.js';
import type { QaCheckInput } from './qa-check.js';
import {
  SIDECAR_TOLERANCES,
  sidecarConsistencyCheck,
  sidecarDurationToleranceSec,
} from './sidecar-consistency.check.js';
import {
  expectedOf,
  GOOD_PROFILE,
  goodSidecar,
  START_NS,
  streamOf,
  type TopicSpec,
  writeRecording,
} from './testing/mcap-corpus.js';

async function inputFor(bytes: Uint8Array, extra: Partial<QaCheckInput> = {}): Promise<QaCheckInput> {
  return {
    scan: await scanMcap(streamOf(bytes), { digest: 'inline' }),
    expected: expectedOf(bytes),
    recording: null,
    profile: null,
    ...extra,
  };
}

const oneTopic = (spec: Partial<TopicSpec> = {}): TopicSpec[] => [
  { topic: '/joint_states', schemaName: 'sensor_msgs/JointState', hz: 10, payloadBytes: 16, ...spec },
];

describe('sidecar_consistency@1', () => {
  it('exports its tolerances: counts and topics exact, duration ±max(0.5 s, 2 %)', () => {
    expect(SIDECAR_TOLERANCES).toEqual({ durationAbsoluteSec: 0.5, durationRelative: 0.02, messageCount: 0 });
    expect(sidecarDurationToleranceSec(10)).toBe(0.5);
    expect(sidecarDurationToleranceSec(100)).toBe(2);
  });

  it('accepts a duration inside the tolerance and refuses one just outside it (60 s recording: ±1.2 s)', async () => {
    const input = await inputFor(await writeRecording({ durationSec: 60, topics: oneTopic() }));
    const run = (duration_sec: number) => sidecarConsistencyCheck.run({ ...input, recording: { duration_sec } });
    expect(run(61.19)).toMatchObject({ status: 'passed', details: 'sidecar agrees with the MCAP: duration 60.000 s' });
    expect(run(58.81).status).toBe('passed');
    expect(run(61.25)).toMatchObject({
      status: 'failed',
      details:
        'sidecar disagrees with the MCAP: duration: sidecar says 61.250 s, MCAP spans 60.000 s (tolerance ±1.200 s)',
    });
  });

  it('lists every disagreement, scoring the share that agreed', async () => {
    const bytes = await writeRecording();
    const input = await inputFor(bytes);
    const result = sidecarConsistencyCheck.run({
      ...input,
      recording: { ...goodSidecar(bytes), message_count: 1, topics: ['/imu'] },
    });
    expect(result.details).toBe(
      'sidecar disagrees with the MCAP: message_count: sidecar says 1, MCAP has 323; ' +
        'topics: MCAP has /camera/color, /joint_states not in the sidecar',
    );
    expect(result.score).toBeCloseTo(1 / 3);
  });

  it('is skipped when the sidecar says nothing it could compare', async () => {
    const input = await inputFor(await writeRecording());
    expect(sidecarConsistencyCheck.run({ ...input, recording: { recorder_version: '1.2' } })).toMatchObject({
      status: 'skipped',
      passed: false,
      details: 'sidecar gives no message_count, topics or duration_sec',
    });
  });
});

describe('profile@1', () => {
  it('validates profiles with the contract schema', () => {
    expect(QaProfile.parse(GOOD_PROFILE)).toEqual(GOOD_PROFILE);
    expect(QaProfile.safeParse({ required_topics: [], duration_sec: { min: 10, max: 5 } }).success).toBe(false);
    expect(QaProfile.safeParse({ required_topics: ['/a'], topics: { '/a': { min_rate_hz: -1 } } }).success).toBe(false);
    expect(QaProfile.safeParse({ required_topics: ['/a'], extra: true }).success).toBe(false);
  });

  it('counts a gap at the end of the recording: a topic that stopped early', async () => {
    const topics: TopicSpec[] = [
      ...oneTopic({ hz: 100 }),
      { topic: '/camera', schemaName: 'Image', hz: 10, payloadBytes: 64, gap: { fromSec: 3, toSec: 99 } },
    ];
    const input = await inputFor(await writeRecording({ durationSec: 5, topics }));
    const result = profileCheck.run({
      ...input,
      profile: { required_topics: ['/camera'], topics: { '/camera': { max_gap_ms: 500 } } },
    });
    expect(result.details).toBe(
      'profile not met: /camera: longest gap 2100.0 ms (after its last message) exceeds max_gap_ms 500',
    );
  });

  it('reports a required topic whose channel exists but carries no messages', async () => {
    const input = await inputFor(await writeRecording({ noMessages: true }));
    const result = profileCheck.run({ ...input, profile: { required_topics: ['/imu'] } });
    expect(result.details).toBe('profile not met: required topic /imu has no messages');
  });

  it('passes, naming what it checked', async () => {
    const input = await inputFor(await writeRecording());
    expect(profileCheck.run({ ...input, profile: GOOD_PROFILE })).toMatchObject({
      status: 'passed',
      score: 1,
      details: 'profile met: 2 required topics present, duration 2.000 s, 6 other rules satisfied',
      metrics: { rules: 8, failed_rules: 0 },
    });
  });
});

describe('log_time_order@1', () => {
  it('in an unchunked file, catches log time going back across channels even when each channel is in order', async () => {
    // Swap the /imu message at 0.20 s with the /joint_states message at 0.21 s after it: each channel stays in order.
    const swapped = (ms: McapTypes.Message[]) => {
      const i = ms.findIndex((m) => m.channelId === 2 && m.logTime === START_NS + 200_000_000n);
      expect(ms[i + 1]).toMatchObject({ channelId: 1, logTime: START_NS + 210_000_000n });
      const copy = [...ms];
      [copy[i], copy[i + 1]] = [copy[i + 1]!, copy[i]!];
      return copy;
    };
    const bytes = await writeRecording({ chunked: false, messages: swapped });
    const input = await inputFor(bytes);
    const result = logTimeOrderCheck.run(input);
    expect(result.status).toBe('failed');
    expect(result.details).toMatch(
      new RegExp(
        `^log time goes backwards: across channels: /imu \\(channel 2\\) message sequence 10 at log time ${START_NS + 200_000_000n} comes after log time ${START_NS + 210_000_000n} \\(at offset \\d+, after a message on /joint_states\\)$`,
      ),
    );
    expect(result.metrics).toMatchObject({ out_of_order_messages: 0 });
    // The same reordering inside chunks is fine: chunked files are only checked per channel.
    expect(logTimeOrderCheck.run(await inputFor(await writeRecording({ messages: swapped }))).status).toBe('passed');
  });
});
