import { describe, expect, it } from 'vitest';
import { captureLogger } from '../testing/index.js';
import { currentTrace, runWithTrace } from './context.js';

describe('logger', () => {
  it('writes JSON lines with the service and, inside a trace, the request id', async () => {
    const { logger, lines } = captureLogger('svc');
    logger.info('outside');
    await runWithTrace({ requestId: 'req-9' }, async () => {
      await new Promise((r) => setTimeout(r, 1));
      logger.info({ order_id: 'o1' }, 'inside');
      expect(currentTrace()).toEqual({ requestId: 'req-9' });
    });
    await new Promise((r) => setTimeout(r, 10));
    const [outside, inside] = lines();
    expect(outside).toMatchObject({ service: 'svc', level: 'info', msg: 'outside' });
    expect(outside).not.toHaveProperty('request_id');
    expect(inside).toMatchObject({ service: 'svc', msg: 'inside', request_id: 'req-9', order_id: 'o1' });
    expect(typeof inside!.time).toBe('string');
  });

  it('nests traces without losing the outer request id', () => {
    runWithTrace({ requestId: 'r1' }, () => {
      runWithTrace({ causationId: 'e1' }, () => {
        expect(currentTrace()).toEqual({ requestId: 'r1', causationId: 'e1' });
      });
    });
  });
});
