import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { McapIndexedReader, TempBuffer } from '@mcap/core';
import { afterAll, describe, expect, it } from 'vitest';
import { demoRecording } from './demo-recording.js';

const dir = mkdtempSync(path.join(tmpdir(), 'ferry-demo-recording-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('demoRecording', () => {
  it('writes a real, indexed MCAP of /camera and /joints in log-time order, and a sidecar that agrees with it', async () => {
    const startedAt = new Date('2026-01-02T03:04:05.000Z');
    const rec = await demoRecording(dir, 'task-1', { startedAt });
    expect(rec).toMatchObject({ reused: false, messageCount: 375, topics: ['/camera', '/joints'] });
    expect(rec.durationSec).toBe(4.983);
    const bytes = readFileSync(rec.mcap.path);
    expect(rec.mcap).toMatchObject({ size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') });

    const reader = await McapIndexedReader.Initialize({ readable: new TempBuffer(bytes) });
    expect([...reader.channelsById.values()].map((c) => c.topic).sort()).toEqual(['/camera', '/joints']);
    expect(reader.statistics?.messageCount).toBe(375n);
    let last = 0n;
    const perTopic = new Map<string, number>();
    for await (const message of reader.readMessages()) {
      expect(message.logTime >= last).toBe(true);
      last = message.logTime;
      const topic = reader.channelsById.get(message.channelId)!.topic;
      perTopic.set(topic, (perTopic.get(topic) ?? 0) + 1);
      JSON.parse(new TextDecoder().decode(message.data));
    }
    expect(Object.fromEntries(perTopic)).toEqual({ '/camera': 75, '/joints': 300 });
    expect(reader.statistics?.messageStartTime).toBe(BigInt(startedAt.getTime()) * 1_000_000n);

    expect(JSON.parse(readFileSync(rec.sidecar.path, 'utf8'))).toEqual({
      recording: {
        duration_sec: rec.durationSec,
        message_count: 375,
        topics_recorded: ['/camera', '/joints'],
        started_at: '2026-01-02T03:04:05.000Z',
        ended_at: '2026-01-02T03:04:09.983Z',
        recorder_version: 'ferry-demo-upload/1',
      },
    });
  });

  it('finds the same recording again for the same task, so an interrupted upload resumes with the same bytes', async () => {
    const first = await demoRecording(dir, 'task-2');
    const again = await demoRecording(dir, 'task-2');
    expect(again).toEqual({ ...first, reused: true });
  });
});
