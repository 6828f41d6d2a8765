import { describe, expect, it } from 'vitest';
import { findUnstorable, INPUT_LIMITS, jsonByteLength, Metadata, Timestamp } from './primitives.js';

function nested(levels: number): unknown {
  let v: unknown = 'leaf';
  for (let i = 0; i < levels; i++) v = i % 2 ? [v] : { k: v };
  return v;
}

describe('findUnstorable', () => {
  it('names the path of a NUL character, in a value or in a key', () => {
    expect(findUnstorable({ a: [{ b: 'x\u0000y' }] }, { maxDepth: 10 })).toEqual({
      path: ['a', 0, 'b'],
      message: 'must not contain NUL characters',
    });
    expect(findUnstorable({ 'bad\u0000key': 1 }, { maxDepth: 10 })?.path).toEqual(['bad\u0000key']);
  });

  it('refuses unpaired surrogates but accepts paired ones (emoji)', () => {
    expect(findUnstorable({ s: 'a\ud800' }, { maxDepth: 10 })?.message).toMatch(/unpaired UTF-16 surrogate/);
    expect(findUnstorable({ s: '\udc00' }, { maxDepth: 10 })).toBeDefined();
    expect(findUnstorable({ s: 'ok 😀 ü' }, { maxDepth: 10 })).toBeUndefined();
  });

  it('refuses a document nested past the limit without overflowing the stack, even 100,000 levels deep', () => {
    expect(findUnstorable(nested(5), { maxDepth: 5 })).toBeUndefined();
    expect(findUnstorable(nested(6), { maxDepth: 5 })?.message).toBe('nests deeper than 5 levels');
    const deep = JSON.parse(`${'['.repeat(100_000)}${']'.repeat(100_000)}`);
    expect(findUnstorable(deep, { maxDepth: INPUT_LIMITS.bodyMaxDepth })?.message).toMatch(/deeper than 32/);
  });
});

describe('jsonByteLength', () => {
  it('equals the UTF-8 length of JSON.stringify for ordinary documents', () => {
    for (const v of [{}, [], { a: 1, b: [true, null, 'ü😀'], c: { d: 'x"y' } }, 'plain', 12.5]) {
      expect(jsonByteLength(v)).toBe(Buffer.byteLength(JSON.stringify(v)));
    }
  });

  it('measures a very deep document without recursion', () => {
    const deep = JSON.parse(`${'['.repeat(50_000)}${']'.repeat(50_000)}`);
    expect(jsonByteLength(deep)).toBe(100_000);
  });
});

describe('Metadata', () => {
  it('accepts ordinary objects and refuses ones too deep, too large, or holding NUL', () => {
    expect(Metadata.safeParse({ camera: { fps: 30 } }).success).toBe(true);
    const deep = Metadata.safeParse(nested(INPUT_LIMITS.jsonMaxDepth + 2) as object);
    expect(deep.success).toBe(false);
    const large = Metadata.safeParse({ blob: 'x'.repeat(INPUT_LIMITS.jsonMaxBytes) });
    expect(large.error?.issues[0]?.message).toMatch(/at most 16384 bytes/);
    const nul = Metadata.safeParse({ note: 'a\u0000' });
    expect(nul.error?.issues[0]).toMatchObject({ path: ['note'], message: 'must not contain NUL characters' });
  });
});

describe('Timestamp', () => {
  it('accepts RFC 3339 instants Postgres and our replies can both hold', () => {
    for (const ok of [
      '2026-01-01T00:00:00Z',
      '0001-01-01T00:00:00Z',
      '9999-12-31T23:59:59.999999Z',
      '2026-06-01T12:00:00.5+02:00',
    ]) {
      expect(Timestamp.safeParse(ok).success, ok).toBe(true);
    }
  });

  it('refuses year 0000, sub-microsecond precision, and instants past 9999 in UTC', () => {
    for (const bad of [
      '0000-01-01T00:00:00Z',
      '9999-12-31T23:59:59.9999999Z',
      '9999-12-31T23:30:00-01:00',
      '2026-01-01T00:00:00',
      '+010000-01-01T00:00:00Z',
    ]) {
      expect(Timestamp.safeParse(bad).success, bad).toBe(false);
    }
  });
});
