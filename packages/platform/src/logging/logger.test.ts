import { describe, expect, it } from 'vitest';
import { captureLogger, waitFor } from '../testing/index.js';
import { currentTrace, runWithTrace } from './context.js';

describe('logger', () => {
  it('writes JSON lines with the service and, inside a trace, the request id', async () => {
    const { logger, lines } = captureLogger('svc');
    logger.info('outside');
    // Across an await inside the trace, the trace must still be there.
    const traceInside = await runWithTrace({ requestId: 'req-9' }, async () => {
      await new Promise((r) => setImmediate(r));
      logger.info({ order_id: 'o1' }, 'inside');
      return currentTrace();
    });
    expect(traceInside).toEqual({ requestId: 'req-9' });
    await waitFor(() => lines().length === 2, { what: 'both log lines' });
    const [outside, inside] = lines();
    expect(outside).toMatchObject({ service: 'svc', level: 'info', msg: 'outside' });
    expect(outside).not.toHaveProperty('request_id');
    expect(inside).toMatchObject({ service: 'svc', msg: 'inside', request_id: 'req-9', order_id: 'o1' });
    expect(typeof inside!.time).toBe('string');
  });

  it('nests traces without losing the outer request id', () => {
    const nested = runWithTrace({ requestId: 'r1' }, () => runWithTrace({ causationId: 'e1' }, () => currentTrace()));
    expect(nested).toEqual({ requestId: 'r1', causationId: 'e1' });
    expect(currentTrace()).toEqual({});
  });
});
