import { z } from 'zod';
import { APPROVAL_STATUSES, type Approval, type ApprovalStatus } from '../../../../libs/approvals/index.js';
import { nullableTime, page, time, uuid } from '../common/responses.js';

/** 202: the request waits for a reviewer; repeat it with `approval_id` once approved. */
export const approvalPendingResponse = z.strictObject({
  approval_id: uuid,
  status: z.literal('pending'),
  expires_at: time.describe('until when the approval can be decided and used'),
});

export const approvalResponse = z.strictObject({
  approval_id: uuid,
  status: z
    .enum(APPROVAL_STATUSES as [ApprovalStatus, ...ApprovalStatus[]])
    .describe('expired: past expires_at; revoked: its task ended or changed intent, or its boundary was disabled (for good)'),
  task_id: uuid,
  workload_id: z.string(),
  boundary_id: z.string(),
  boundary_version: z.int(),
  action: z.string(),
  resource: z.string().nullable(),
  params: z.record(z.string(), z.unknown()).nullable(),
  purpose: z.string().nullable(),
  ttl: z.int().describe('the lease ttl (seconds) the request would have had when asked: the repeat gets at most this'),
  intent: z.string().describe("the task's intent when asked"),
  decision_id: uuid.describe('the pending decision that asked for it'),
  requested_at: time,
  expires_at: time,
  decided_at: nullableTime,
  decided_by: z.string().nullable().describe('reviewer:<key id> or admin:<key id>'),
  reason: z.string().nullable(),
  used_at: nullableTime,
  lease_id: uuid.nullable().describe('the lease it was used for'),
  revoked_at: nullableTime,
  revoke_reason: z
    .string()
    .nullable()
    .describe("intent_changed, boundary_disabled, or the task's end reason (task_completed, workload_revoked, …)"),
});

export const approvalPage = page(approvalResponse);

/** An approval as reviewers see it: the exact request it is bound to, and who decided it and why. */
export function approvalView(approval: Approval): z.infer<typeof approvalResponse> {
  return {
    approval_id: approval.id,
    status: approval.status,
    task_id: approval.taskId,
    workload_id: approval.workloadId,
    boundary_id: approval.boundaryId,
    boundary_version: approval.boundaryVersion,
    action: approval.action,
    resource: approval.resource,
    params: approval.params,
    purpose: approval.purpose,
    ttl: approval.ttl,
    intent: approval.intent,
    decision_id: approval.decisionId,
    requested_at: approval.requestedAt.toISOString(),
    expires_at: approval.expiresAt.toISOString(),
    decided_at: approval.decidedAt?.toISOString() ?? null,
    decided_by: approval.decidedBy,
    reason: approval.reason,
    used_at: approval.usedAt?.toISOString() ?? null,
    lease_id: approval.leaseId,
    revoked_at: approval.revokedAt?.toISOString() ?? null,
    revoke_reason: approval.revokeReason,
  };
}
