import { z } from 'zod';
import { LEASE_STATES } from '../../../../libs/leases/index.js';
import { callFilters, cleanText, reviewFilters, SINCE_BEFORE_UNTIL, sinceBeforeUntil } from '../common/requests.js';

export const leaseQuery = z
  .strictObject({
    ...reviewFilters,
    ...callFilters,
    state: z.enum(LEASE_STATES).optional(),
  })
  .refine(sinceBeforeUntil, SINCE_BEFORE_UNTIL);
export const decisionQuery = z
  .strictObject({ ...reviewFilters, ...callFilters, outcome: z.enum(['permit', 'deny', 'pending']).optional() })
  .refine(sinceBeforeUntil, SINCE_BEFORE_UNTIL);

/** POST /v1/admin/{leases|tasks}/{id}/revoke: why, for the audit log (the lease keeps its reason code). */
export const revokeBody = z.strictObject({ reason: cleanText(1024).optional() });
