import { ConfigError, loadConfig } from '@ferry/platform';
import { describe, expect, it } from 'vitest';
import { QaConfig } from './manifest.js';

/** The environment as the service reads it at start (runService loads its config the same way). */
const load = (env: Record<string, string>) => loadConfig(QaConfig, env);

/** The variables a refused configuration names, with their messages. */
function refusal(env: Record<string, string>) {
  try {
    load(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.issues;
    throw err;
  }
  throw new Error('the configuration was accepted');
}

describe('QaConfig', () => {
  it('accepts its defaults, in which BULK_STALE_MS is above BULK_POLL_MS and the claim lease', () => {
    const config = load({});
    expect(config.BULK_STALE_MS).toBeGreaterThan(config.BULK_POLL_MS);
    expect(config.BULK_STALE_MS).toBeGreaterThan(config.QA_CLAIM_LEASE_MS);
  });

  it('refuses a BULK_STALE_MS not above BULK_POLL_MS or QA_CLAIM_LEASE_MS, naming the variables and their values', () => {
    const message =
      'must be above BULK_POLL_MS (1000) and QA_CLAIM_LEASE_MS (30000) — well above both: a bulk run nobody ' +
      'heart-beats for BULK_STALE_MS is interrupted';
    expect(refusal({ BULK_STALE_MS: '30000' })).toEqual([{ variable: 'BULK_STALE_MS', message }]);
    expect(refusal({ BULK_STALE_MS: '1000', QA_CLAIM_LEASE_MS: '500' })).toEqual([
      { variable: 'BULK_STALE_MS', message: message.replace('30000', '500') },
    ]);
    expect(() => load({ BULK_STALE_MS: '1001', QA_CLAIM_LEASE_MS: '500' })).not.toThrow();
  });

  it('refuses a QA_REDRIVE_UNANSWERED_MS below QA_REDRIVE_AFTER_MS', () => {
    expect(refusal({ QA_REDRIVE_AFTER_MS: '7200000', QA_REDRIVE_UNANSWERED_MS: '3600000' })).toEqual([
      {
        variable: 'QA_REDRIVE_UNANSWERED_MS',
        message:
          'must be at least QA_REDRIVE_AFTER_MS (7200000): an unanswered re-drive is repeated no sooner than an answered one',
      },
    ]);
  });
});
