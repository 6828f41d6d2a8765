import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { BaseConfig, ConfigError, loadConfig } from './config.js';

describe('loadConfig', () => {
  it('applies defaults when nothing is set', () => {
    const config = loadConfig(BaseConfig, {});
    expect(config.NATS_URL).toBe('nats://127.0.0.1:4222');
    expect(config.FERRY_NAMESPACE).toBe('');
    expect(config.DB_POOL_MAX).toBe(10);
  });

  it('names every bad variable in one error', () => {
    const schema = BaseConfig.extend({ HEALTH_PORT: z.coerce.number().int().min(0).max(65535) });
    let error: unknown;
    try {
      loadConfig(schema, { DATABASE_URL: 'mysql://x', DB_POOL_MAX: 'many', HEALTH_PORT: '70000' });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message).toMatch(/DATABASE_URL/);
    expect(message).toMatch(/DB_POOL_MAX/);
    expect(message).toMatch(/HEALTH_PORT/);
    expect((error as ConfigError).issues.map((i) => i.variable).sort()).toEqual([
      'DATABASE_URL',
      'DB_POOL_MAX',
      'HEALTH_PORT',
    ]);
  });

  it('treats an empty variable as unset', () => {
    expect(loadConfig(BaseConfig, { LOG_LEVEL: '' }).LOG_LEVEL).toBe('info');
  });

  it('rejects a namespace that could escape its schema or subject prefix', () => {
    expect(() => loadConfig(BaseConfig, { FERRY_NAMESPACE: 'a.b' })).toThrow(/FERRY_NAMESPACE/);
    expect(() => loadConfig(BaseConfig, { NATS_URL: 'http://x' })).toThrow(/NATS_URL/);
  });
});
