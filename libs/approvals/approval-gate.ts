import { uuidv7 } from '../ids/index.js';
import { DEFAULT_APPROVAL_TTL_S, type ToolBoundary } from '../policy/index.js';
import { paramsHash, sameBinding, type ApprovalBinding, type ApprovalStatus } from './approval.js';
import type { ApprovalStore, NewApproval } from './approval-store.js';

/** The decision a request that waits for approval leaves (the leases layer's DecisionRecord is one). */
export interface PendingDecision {
  id: string;
  taskId: string | null;
  workloadId: string;
  boundaryId: string | null;
  boundaryVersion: number | null;
  action: string;
  resource: string | null;
  params: unknown;
  purpose: string | null;
  requestedTtl: number | null;
  at: number;
  policies?: readonly { id: string; version: number }[] | null | undefined;
}

/**
 * Where a pending decision is written: the decisions table belongs to the leases layer above
 * (DecisionLedger.recordPending), so the composition root passes it in. With `created`, the same
 * statement writes the new approval and its approval.requested event.
 */
export interface PendingDecisions {
  recordPending(decision: PendingDecision, approvalId: string, created: NewApproval | undefined): Promise<void>;
}

/** Why a repeat with an approval id is refused. */
export type ApprovalRefusal =
  'unknown_approval' | 'approval_mismatch' | 'approval_denied' | 'approval_expired' | 'approval_used' | 'approval_revoked';

export type ApprovalVerdict =
  /** Permit, consuming this approved approval in the permit's statement, with at most its ttl. */
  | { outcome: 'consume'; approvalId: string; ttl: number }
  /** Written already (pending decision, audit, maybe the approval): answer 202. */
  | { outcome: 'pending'; approvalId: string; expiresAt: Date }
  | { outcome: 'deny'; reason: ApprovalRefusal; description: string };

export interface GateInput {
  decision: PendingDecision;
  task: { id: string; intent: string };
  boundary: ToolBoundary;
  params: Record<string, unknown> | undefined;
  /** Database clock, milliseconds. */
  now: number;
}

const REFUSALS: Partial<Record<ApprovalStatus, [ApprovalRefusal, string]>> = {
  denied: ['approval_denied', 'a reviewer denied the approval'],
  expired: ['approval_expired', 'the approval has expired'],
  used: ['approval_used', 'the approval was already used'],
  revoked: ['approval_revoked', 'the approval died with its task (ended, or the intent changed)'],
};

/**
 * Step-up. A repeat names its approval, which must match the request exactly: whether it is
 * approved is settled before Cedar decides (policies read it as `context.approved`). A request
 * that needs approval (the boundary's rule or an `@approval("required")` permit decided it) leaves
 * a pending decision and an approval, or points at the one already pending for it.
 */
export class ApprovalGate {
  constructor(
    private readonly store: Pick<ApprovalStore, 'find' | 'pendingFor'>,
    private readonly pending: PendingDecisions,
  ) {}

  /** The approval a repeat names: approved (to be used up by the permit), still pending, or refused. */
  async named(input: GateInput, approvalId: string): Promise<ApprovalVerdict> {
    const { decision } = input;
    const approval = await this.store.find(approvalId);
    // Another workload's approval is indistinguishable from a missing one.
    if (!approval || approval.workloadId !== decision.workloadId) return deny('unknown_approval', 'no such approval');
    if (!sameBinding(approval, bindingOf(input))) return deny('approval_mismatch', 'the approval was given for a different request');
    const refusal = REFUSALS[approval.status];
    if (refusal) return deny(...refusal);
    if (approval.status === 'approved') return { outcome: 'consume', approvalId: approval.id, ttl: approval.ttl };
    await this.pending.recordPending(decision, approval.id, undefined);
    return { outcome: 'pending', approvalId: approval.id, expiresAt: approval.expiresAt };
  }

  /**
   * A request that needs approval and names none: asking again points at the approval already
   * pending. `ttl` is the lease ttl the request would get now: the reviewer approves that much.
   */
  async ask(input: GateInput, ttl: number): Promise<Extract<ApprovalVerdict, { outcome: 'pending' }>> {
    const { decision, task, boundary } = input;
    const binding = bindingOf(input);
    const pending = await this.store.pendingFor(binding);
    if (pending) {
      await this.pending.recordPending(decision, pending.id, undefined);
      return { outcome: 'pending', approvalId: pending.id, expiresAt: pending.expiresAt };
    }
    const approvalId = uuidv7(input.now);
    const expiresAt = input.now + (boundary.approval?.ttl ?? DEFAULT_APPROVAL_TTL_S) * 1000;
    await this.pending.recordPending(decision, approvalId, {
      id: approvalId,
      paramsHash: binding.paramsHash,
      intent: task.intent,
      expiresAt,
      ttl,
    });
    return { outcome: 'pending', approvalId, expiresAt: new Date(expiresAt) };
  }
}

function bindingOf({ decision, task, boundary, params }: GateInput): ApprovalBinding {
  return {
    workloadId: decision.workloadId,
    taskId: task.id,
    boundaryId: boundary.id,
    action: decision.action,
    resource: decision.resource,
    paramsHash: paramsHash(params),
    purpose: decision.purpose,
  };
}

function deny(reason: ApprovalRefusal, description: string): ApprovalVerdict & { outcome: 'deny' } {
  return { outcome: 'deny', reason, description };
}
