import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { newId } from './ids.js';

describe('newId', () => {
  it('makes valid UUIDv7s that sort in creation order, even within one millisecond', () => {
    const ids = Array.from({ length: 20_000 }, () => newId());
    for (const id of ids.slice(0, 100)) expect(z.uuid({ version: 'v7' }).safeParse(id).success, id).toBe(true);
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('carries the creation time in its first 48 bits', () => {
    const before = Date.now();
    const id = newId();
    const ms = Number.parseInt(id.replaceAll('-', '').slice(0, 12), 16);
    expect(ms).toBeGreaterThanOrEqual(before);
    expect(ms).toBeLessThanOrEqual(Date.now() + 5);
  });
});
