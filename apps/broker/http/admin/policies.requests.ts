import { z } from 'zod';
import { WORKLOAD_ID } from '../../../../libs/identity/index.js';
import { cleanText, intent, policyText } from '../common/requests.js';
import { credentialBody } from '../tasks/tasks.requests.js';

/** PUT /v1/admin/policies/{id}: a global Cedar policy set. */
export const policyBody = z.strictObject({
  policy: policyText,
  description: cleanText(1024).nullable().default(null),
});

/** POST /v1/admin/simulate: a credential request as a workload would make it, on a task it would have. */
export const simulateBody = z.strictObject({
  workload: z.string().regex(WORKLOAD_ID, 'must be a slug [a-z0-9][a-z0-9._-]{0,62} or a SPIFFE ID'),
  task: z.strictObject({ intent, subject: cleanText(256) }),
  request: credentialBody.omit({ ttl: true }),
});

/** POST /v1/admin/{policies|boundaries}/{id}/what-if: a proposed policy and the window to replay. */
export const whatIfBody = z
  .strictObject({
    policy: policyText,
    since: z.iso.datetime({ offset: true }).optional(),
    until: z.iso.datetime({ offset: true }).optional(),
    limit: z.number().int('must be an integer').min(1, 'must be at least 1').max(100_000, 'must be at most 100000').optional(),
  })
  .refine((body) => !body.since || !body.until || Date.parse(body.since) < Date.parse(body.until), {
    message: 'must be before until',
    path: ['since'],
  });
