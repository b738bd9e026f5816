import { z } from 'zod';
import { APPROVAL_STATUSES, type ApprovalStatus } from '../../../../libs/approvals/index.js';
import { cleanText, reviewFilters, SINCE_BEFORE_UNTIL, sinceBeforeUntil } from '../common/requests.js';

export const approvalQuery = z
  .strictObject({ ...reviewFilters, status: z.enum(APPROVAL_STATUSES as [ApprovalStatus, ...ApprovalStatus[]]).optional() })
  .refine(sinceBeforeUntil, SINCE_BEFORE_UNTIL);

/** Approve or deny: who decided is the API key; why is required. */
export const approvalDecisionBody = z.strictObject({ reason: cleanText(1024) });
