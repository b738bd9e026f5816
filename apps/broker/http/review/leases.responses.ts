import { z } from 'zod';
import { LEASE_STATES, type Lease } from '../../../../libs/leases/index.js';
import { nullableTime, page, time, uuid } from '../common/responses.js';

export const leaseResponse = z.strictObject({
  lease_id: uuid,
  task_id: uuid,
  workload_id: z.string(),
  boundary_id: z.string(),
  boundary_version: z.int(),
  action: z.string(),
  resource: z.string().nullable(),
  credential_kind: z.string(),
  state: z
    .enum(LEASE_STATES)
    .describe(
      'issuing, revoking and revoke_failed only for credentials at a source (vault): revoking waits for the source to confirm; revoke_failed gave up after every retry and is retried daily',
    ),
  issued_at: time,
  expires_at: time,
  revoked_at: nullableTime,
  revoke_reason: z.string().nullable(),
});

export const leaseRevokedResponse = leaseResponse.extend({
  revoked_now: z.boolean().describe('this call revoked it (false: it was revoked or expired already)'),
});

export const leasePage = page(leaseResponse);

export function leaseView(lease: Lease): z.infer<typeof leaseResponse> {
  return {
    lease_id: lease.id,
    task_id: lease.taskId,
    workload_id: lease.workloadId,
    boundary_id: lease.boundaryId,
    boundary_version: lease.boundaryVersion,
    action: lease.action,
    resource: lease.resource,
    credential_kind: lease.credentialKind,
    state: lease.state,
    issued_at: lease.issuedAt.toISOString(),
    expires_at: lease.expiresAt.toISOString(),
    revoked_at: lease.revokedAt?.toISOString() ?? null,
    revoke_reason: lease.revokeReason,
  };
}
