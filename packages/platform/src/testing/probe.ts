import { defineConsumer, defineEvent } from '@ferry/contracts';
import { z } from 'zod';

/** A throwaway event on the PRODUCTION stream for platform tests. */
export const probeEvent = defineEvent({
  type: 'production.evt.probe.fired.v1',
  schema: z.object({ n: z.number().int(), fail: z.enum(['never', 'always', 'crash']).default('never') }),
  description: 'test probe',
});

export function probeConsumer(overrides: { durable?: string; ackWaitMs?: number; maxDeliver?: number } = {}) {
  return defineConsumer({
    durable: overrides.durable ?? 'production__probe',
    service: 'production',
    events: [probeEvent],
    ackWaitMs: overrides.ackWaitMs ?? 1_000,
    maxDeliver: overrides.maxDeliver ?? 3,
    concurrency: 4,
  });
}
