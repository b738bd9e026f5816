import { paramsDigest } from '../audit/index.js';

/**
 * A human approval (step-up) for one exact credential request. Stored statuses are pending,
 * approved, denied, used and revoked (its task ended or changed intent, or its boundary was
 * disabled: stored, so it never comes back); `expired` (past expires_at) is derived when read, so
 * nothing has to sweep it.
 */
export type ApprovalStatus = 'pending' | 'approved' | 'denied' | 'used' | 'expired' | 'revoked';
export const APPROVAL_STATUSES: readonly ApprovalStatus[] = ['pending', 'approved', 'denied', 'used', 'expired', 'revoked'];

export interface Approval {
  id: string;
  taskId: string;
  workloadId: string;
  boundaryId: string;
  boundaryVersion: number;
  action: string;
  resource: string | null;
  params: Record<string, unknown> | null;
  paramsHash: string;
  purpose: string | null;
  /** The lease ttl the request would have had when asked: what the reviewer saw, and the most the repeat gets. */
  ttl: number;
  intent: string;
  status: ApprovalStatus;
  decisionId: string;
  requestedAt: Date;
  expiresAt: Date;
  decidedAt: Date | null;
  /** `reviewer:<key id>` or `admin:<key id>`. */
  decidedBy: string | null;
  reason: string | null;
  usedAt: Date | null;
  leaseId: string | null;
  revokedAt: Date | null;
  /** intent_changed, boundary_disabled, or the task's end reason (task_completed, workload_revoked, drift_detected, …). */
  revokeReason: string | null;
}

/**
 * What an approval is bound to: a repeat that differs in any of these is refused. The ttl is bound
 * too, as a cap rather than a match: the repeat gets at most the approved ttl (libs/leases/ttl.ts).
 */
export interface ApprovalBinding {
  workloadId: string;
  taskId: string;
  boundaryId: string;
  action: string;
  resource: string | null;
  paramsHash: string;
  purpose: string | null;
}

export function sameBinding(approval: ApprovalBinding, request: ApprovalBinding): boolean {
  return (
    approval.workloadId === request.workloadId &&
    approval.taskId === request.taskId &&
    approval.boundaryId === request.boundaryId &&
    approval.action === request.action &&
    approval.resource === request.resource &&
    approval.paramsHash === request.paramsHash &&
    approval.purpose === request.purpose
  );
}

/** The approval's binding of the params: the same digest the credential carries (`params_digest`). */
export const paramsHash = paramsDigest;
