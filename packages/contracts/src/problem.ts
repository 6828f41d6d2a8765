import { z } from 'zod';
import { ERROR_CODE_LIST } from './errors.js';

export const FieldError = z
  .object({
    /** JSON-pointer-like path of the bad field, prefixed by its location: `body.name`, `query.limit`. */
    path: z.string(),
    message: z.string(),
  })
  .meta({ id: 'FieldError' });

/** RFC 9457 problem details, the one error body of the HTTP API. */
export const Problem = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    code: z.enum(ERROR_CODE_LIST as [string, ...string[]]),
    request_id: z.string(),
    errors: z.array(FieldError).optional(),
    details: z.record(z.string(), z.unknown()).optional(),
  })
  .meta({ id: 'Problem' });
export type Problem = z.infer<typeof Problem>;
