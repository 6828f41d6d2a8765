import { z } from 'zod';

/** Why production refused to turn a verified upload into an episode. */
export const UploadRejectionReason = z.enum([
  'task_not_found',
  'organization_mismatch',
  'not_owner',
  'task_cancelled',
  'task_failed',
  'task_has_episode',
]);
export type UploadRejectionReason = z.infer<typeof UploadRejectionReason>;
