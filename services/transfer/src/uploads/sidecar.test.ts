import { describe, expect, it } from 'vitest';
import { parseSidecar, SidecarInvalid } from './sidecar.js';

const buf = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v));

describe('parseSidecar', () => {
  it('reads Keystone-style sidecars into the recording metadata, merging both topic lists', () => {
    const recording = parseSidecar(
      buf({
        recording: {
          duration_sec: 12.5,
          message_count: 300,
          topics_recorded: ['/cam', '/joints'],
          started_at: '2026-01-01T00:00:00Z',
          recorder_version: '1.4.0',
          writer_health: 'ok',
        },
        topics_summary: [{ topic: '/joints', message_count: 100 }, { topic: '/imu' }],
        asset_id: 'A-7',
      }),
    );
    expect(recording).toMatchObject({
      duration_sec: 12.5,
      message_count: 300,
      topics: ['/cam', '/joints', '/imu'],
      started_at: '2026-01-01T00:00:00Z',
      recorder_version: '1.4.0',
      extra: { asset_id: 'A-7', recording: { writer_health: 'ok' } },
    });
  });

  it('accepts an empty object (every field is optional)', () => {
    expect(parseSidecar(buf({}))).toEqual({});
  });

  it.each([
    ['not JSON', '{"recording":', /^the sidecar is not JSON: /],
    ['not UTF-8', Buffer.from([0x7b, 0xff, 0x7d]), /^the sidecar is not UTF-8$/],
    ['a wrong type', { recording: { message_count: 'many' } }, /^sidecar recording\.message_count: /],
    ['a NUL character', { recording: { recorder_version: 'a\u0000b' } }, /must not contain NUL/],
    ['a negative duration', { recording: { duration_sec: -1 } }, /^sidecar recording\.duration_sec: /],
  ])('refuses %s, naming the problem', (_what, input, message) => {
    const bytes = Buffer.isBuffer(input) ? input : buf(input);
    expect(() => parseSidecar(bytes)).toThrow(SidecarInvalid);
    expect(() => parseSidecar(bytes)).toThrow(message);
  });
});
