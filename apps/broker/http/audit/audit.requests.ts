import { z } from 'zod';
import { AUDIT_KINDS } from '../../../../libs/audit/index.js';
import { limit, reviewFilters, SINCE_BEFORE_UNTIL, sinceBeforeUntil } from '../common/requests.js';

/** An audit cursor is the seq of the last event of the page (events are read newest seq first). */
const seqCursor = z
  .string()
  .max(64)
  .transform((value, ctx) => {
    const decoded = Buffer.from(value, 'base64url').toString('utf8');
    if (!/^[1-9]\d{0,17}$/.test(decoded)) {
      ctx.addIssue({ code: 'custom', message: 'is not a cursor this API returned' });
      return z.NEVER;
    }
    return decoded;
  });

export function encodeSeqCursor(seq: string): string {
  return Buffer.from(seq, 'utf8').toString('base64url');
}

export const auditQuery = z
  .strictObject({
    task: reviewFilters.task,
    workload: reviewFilters.workload.describe('events the workload caused, and events about its tasks'),
    kind: z.enum(AUDIT_KINDS).optional(),
    since: reviewFilters.since,
    until: reviewFilters.until,
    limit,
    cursor: seqCursor.optional(),
  })
  .refine(sinceBeforeUntil, SINCE_BEFORE_UNTIL);
