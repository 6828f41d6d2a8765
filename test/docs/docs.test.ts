import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ALL_EVENTS, ERROR_CODE_LIST } from '@ferry/contracts';
import { describe, expect, it } from 'vitest';

const read = (file: string) => readFileSync(path.resolve(import.meta.dirname, '../../docs', file), 'utf8');

/** The docs are part of the contract: they must name everything a client or subscriber can meet. */
describe('docs', () => {
  it('docs/events.md documents every event type', () => {
    const events = read('events.md');
    const missing = ALL_EVENTS.map((e) => e.type).filter((t) => !events.includes(`\`${t}\``));
    expect(missing).toEqual([]);
  });

  it('docs/api.md documents every error code', () => {
    const api = read('api.md');
    const missing = ERROR_CODE_LIST.filter((c) => !api.includes(`| \`${c}\` |`));
    expect(missing).toEqual([]);
  });
});
