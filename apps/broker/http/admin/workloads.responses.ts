import { z } from 'zod';
import type { Workload } from '../../../../libs/identity/index.js';
import { jwkSet, jwkSetView, time } from '../common/responses.js';

export const workloadResponse = z.strictObject({
  id: z.string(),
  jwks: jwkSet.optional().describe('registered keys (absent when the workload is bound to an issuer)'),
  issuer: z.string().optional().describe('the trusted issuer (its id) whose tokens authenticate this workload'),
  subject: z.string().optional().describe("the token's sub this workload is bound to"),
  enabled: z.boolean(),
  rate_limit: z
    .strictObject({ per_second: z.number().optional(), per_minute: z.int().optional(), per_hour: z.int().optional(), burst: z.int() })
    .optional()
    .describe("its own limit on credential requests, in the unit it was given in; absent: the service's (TOLLGATE_RATE_LIMIT)"),
  revision: z.int(),
  created_at: time,
  updated_at: time,
});
export const workloadList = z.strictObject({ items: z.array(workloadResponse) });
export const workloadRevokedResponse = z.strictObject({
  workload_id: z.string(),
  enabled: z.literal(false),
  revoked_tasks: z.int(),
  revoked_leases: z.int(),
});

export function workloadView(workload: Workload): z.infer<typeof workloadResponse> {
  return {
    id: workload.id,
    // Keys, or an issuer's subject: the workloads table's CHECK holds exactly one of the two.
    ...(workload.jwks ? { jwks: jwkSetView(workload.jwks) } : { issuer: workload.issuerId!, subject: workload.subject! }),
    enabled: workload.enabled,
    // Absent when the service's limit applies, as other views leave out what is not set.
    ...(workload.rateLimit
      ? { rate_limit: { [`per_${workload.rateLimit.per}`]: workload.rateLimit.requests, burst: workload.rateLimit.burst } }
      : {}),
    revision: workload.revision,
    created_at: workload.createdAt.toISOString(),
    updated_at: workload.updatedAt.toISOString(),
  };
}
