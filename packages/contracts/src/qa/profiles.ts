import { z } from 'zod';

const Topic = z.string().min(1).max(500);

/** Per-topic content expectations; each bound is checked only when given. */
export const QaTopicRule = z
  .object({
    /** Messages per second over the recording's duration (count / duration); below it the profile check fails. */
    min_rate_hz: z.number().positive().max(1_000_000).optional(),
    /** Longest allowed silence between two consecutive messages on the topic, in milliseconds (log time). */
    max_gap_ms: z.number().positive().max(86_400_000).optional(),
  })
  .strict()
  .meta({ id: 'QaTopicRule' });
export type QaTopicRule = z.infer<typeof QaTopicRule>;

/**
 * What a recording of a robot type / scene must contain (DESIGN §7, "profile checks"). Durations are measured
 * from the MCAP's first to last message log time, never from the sidecar.
 */
export const QaProfile = z
  .object({
    required_topics: z.array(Topic).max(1000),
    duration_sec: z
      .object({ min: z.number().min(0).optional(), max: z.number().positive().optional() })
      .strict()
      .refine((d) => d.min === undefined || d.max === undefined || d.min <= d.max, 'min must not exceed max')
      .optional(),
    topics: z.record(Topic, QaTopicRule).optional(),
  })
  .strict()
  .meta({ id: 'QaProfile', description: 'Content expectations a recording is checked against (profile@1).' });
export type QaProfile = z.infer<typeof QaProfile>;
