import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { startChild } from '../testing/child-process.js';

// The armed set is read once, at import: each case runs the built module in a fresh process with its own
// FERRY_FAULTS, reaches the points named and reports what it survived.
const built = fileURLToPath(new URL('../../dist/faults/faults.js', import.meta.url));
const scripts = mkdtempSync(join(tmpdir(), 'ferry-faults-'));
let n = 0;

function reach(faults: string, calls: [point: string, scope?: string][]) {
  const script = [
    `const { faultPoint } = await import(${JSON.stringify(built)});`,
    ...calls.map(
      ([point, scope], i) =>
        `faultPoint(${JSON.stringify(point)}, ${JSON.stringify(scope)}); console.log('passed ${i}');`,
    ),
    `console.log('survived');`,
  ].join('\n');
  const file = join(scripts, `reach-${++n}.mjs`);
  writeFileSync(file, script);
  return startChild(file, { FERRY_FAULTS: faults });
}

describe('faultPoint', () => {
  afterAll(() => rmSync(scripts, { recursive: true, force: true }));

  it('fires a scoped fault only where its scope is reached, and says where', async () => {
    const child = reach('consumer.after_commit@production__upload-verified', [
      ['consumer.after_commit', 'production__qa-status'],
      ['consumer.after_commit'],
      ['relay.after_publish'],
      ['consumer.after_commit', 'production__upload-verified'],
    ]);
    expect((await child.waitForExit()).signal).toBe('SIGKILL');
    expect(child.output()).toMatch(/passed 0\npassed 1\npassed 2\n/);
    expect(child.output()).toMatch(/fault injected at consumer\.after_commit@production__upload-verified: killing/);
    expect(child.output()).not.toMatch(/passed 3|survived/);
  });

  it('fires an unscoped fault for whatever scope reaches it first', async () => {
    const child = reach('relay.after_publish, consumer.after_commit', [
      ['consumer.after_commit', 'production__qa-status'],
    ]);
    expect((await child.waitForExit()).signal).toBe('SIGKILL');
    expect(child.output()).toMatch(/fault injected at consumer\.after_commit@production__qa-status/);
    expect(child.output()).not.toMatch(/passed 0|survived/);
  });

  it('is a no-op when nothing is armed', async () => {
    const child = reach('', [['consumer.after_commit', 'production__qa-status'], ['relay.after_publish']]);
    expect(await child.waitForExit()).toEqual({ code: 0, signal: null });
    expect(child.output()).toMatch(/passed 0\npassed 1\nsurvived/);
  });
});
