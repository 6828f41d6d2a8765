import { McapIndexedReader, McapStreamReader, TempBuffer } from '@mcap/core';
import { describe, expect, it } from 'vitest';
import { scanMcap } from './mcap-scan.js';
import { defectCorpus, streamOf } from './testing/mcap-corpus.js';

/**
 * The plain @mcap/core readers, used as a QA service naively would, against the defects that our scanner finds.
 * Each test shows what they let through; the corpus test (qa-suite.test.ts) shows our checks catching it.
 */
const corpus = await defectCorpus();
const file = (name: string) => corpus.find((e) => e.name === name)!.bytes;

/** Every message through the indexed reader (summary, chunk indexes, message indexes, chunk CRCs). */
async function readIndexed(bytes: Uint8Array) {
  const reader = await McapIndexedReader.Initialize({ readable: new TempBuffer(bytes) });
  let messages = 0;
  for await (const _ of reader.readMessages()) messages++;
  return { reader, messages };
}

/** Every record through the stream reader; throws what it throws. */
function readStream(bytes: Uint8Array) {
  const reader = new McapStreamReader();
  reader.append(bytes);
  let messages = 0;
  for (let record = reader.nextRecord(); record; record = reader.nextRecord()) {
    if (record.type === 'Message') messages++;
  }
  return { done: reader.done(), messages };
}

async function ourErrors(bytes: Uint8Array) {
  const scan = await scanMcap(streamOf(bytes), { digest: 'inline' });
  return scan.findings.filter((f) => f.severity === 'error').map((f) => f.code);
}

describe('@mcap/core readers miss, our scanner catches', () => {
  it('an altered data-section CRC: neither reader checks it', async () => {
    const bytes = file('altered data-section CRC');
    await expect(readIndexed(bytes)).resolves.toMatchObject({ messages: 323 });
    expect(readStream(bytes)).toEqual({ done: true, messages: 323 });
    expect(await ourErrors(bytes)).toEqual(['data_section_crc']);
  });

  it('statistics that lie: the indexed reader reports them as they are', async () => {
    const bytes = file('statistics lie: message count');
    const { reader, messages } = await readIndexed(bytes);
    expect(reader.statistics?.messageCount).toBe(330n);
    expect(messages).toBe(323);
    expect(readStream(bytes)).toEqual({ done: true, messages: 323 });
    expect(await ourErrors(bytes)).toEqual(['statistics']);

    const times = file('statistics lie: times');
    await expect(readIndexed(times)).resolves.toMatchObject({ messages: 323 });
    expect(await ourErrors(times)).toEqual(['statistics']);
  });

  it('a chunk index that disagrees with its chunk', async () => {
    const bytes = file('chunk index disagrees with its chunk');
    await expect(readIndexed(bytes)).resolves.toMatchObject({ messages: 323 });
    expect(readStream(bytes)).toEqual({ done: true, messages: 323 });
    expect(await ourErrors(bytes)).toEqual(['chunk_index']);
  });

  it('a message index that disagrees with its chunk: the stream reader ignores indexes', async () => {
    const bytes = file('message index disagrees with its chunk');
    expect(readStream(bytes)).toEqual({ done: true, messages: 323 });
    expect(await ourErrors(bytes)).toEqual(['message_index']);
  });

  it('altered summary bytes: the stream reader does not check the summary CRC (the indexed reader does)', async () => {
    const bytes = file('altered summary bytes');
    expect(readStream(bytes)).toEqual({ done: true, messages: 323 });
    await expect(readIndexed(bytes)).rejects.toThrow(/Incorrect summary CRC/);
    expect(await ourErrors(bytes)).toContain('summary_crc');
  });

  it('a damaged chunk behind an intact summary: summary-only readers see a normal file', async () => {
    const bytes = file('damaged chunk, intact summary');
    const reader = await McapIndexedReader.Initialize({ readable: new TempBuffer(bytes) });
    expect(reader.statistics?.messageCount).toBe(323n);
    expect(reader.chunkIndexes).toHaveLength(10);
    // Only reading every message finds it:
    await expect(readIndexed(bytes)).rejects.toThrow(/Incorrect chunk CRC/);
    expect(await ourErrors(bytes)).toEqual(['chunk_crc']);
  });

  it('empty recordings: both readers accept them without complaint', async () => {
    for (const name of ['no channels', 'channels without messages']) {
      const bytes = file(name);
      await expect(readIndexed(bytes)).resolves.toMatchObject({ messages: 0 });
      expect(readStream(bytes)).toEqual({ done: true, messages: 0 });
    }
  });

  it('log time going backwards: both readers return the messages as written', async () => {
    for (const name of ['log time backwards (chunked)', 'log time backwards (unchunked)']) {
      expect(readStream(file(name))).toEqual({ done: true, messages: 323 });
    }
    await expect(readIndexed(file('log time backwards (chunked)'))).resolves.toMatchObject({ messages: 323 });
  });

  it('a truncated file: the stream reader stops quietly, only done() tells', async () => {
    const bytes = file('truncated inside the summary');
    expect(readStream(bytes)).toEqual({ done: false, messages: 323 });
    expect(await ourErrors(bytes)).toEqual(['truncated', 'footer_missing']);
  });
});
