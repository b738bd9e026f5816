import { uuidv7 } from '../ids/ids.js';
import type { DecisionRecord } from '../leases/lease-store.js';
import { requestModel, requiresApproval } from '../policy/approval-condition.js';
import { DEFAULT_APPROVAL_TTL_S, type ToolBoundary } from '../policy/boundary.js';
import { paramsHash, sameBinding, type ApprovalStatus } from './approval.js';
import type { ApprovalStore } from './approval-store.js';

/** Why a repeat with an approval id is refused. */
export type ApprovalRefusal = 'unknown_approval' | 'approval_mismatch' | 'approval_denied' | 'approval_expired' | 'approval_used' | 'approval_revoked';

export type ApprovalVerdict =
  /** No approval is involved: permit as usual. */
  | { outcome: 'none' }
  /** Permit, consuming this approved approval in the permit's statement. */
  | { outcome: 'consume'; approvalId: string }
  /** Written already (pending decision, audit, maybe the approval): answer 202. */
  | { outcome: 'pending'; approvalId: string; expiresAt: Date }
  | { outcome: 'deny'; reason: ApprovalRefusal; description: string };

export interface GateInput {
  decision: DecisionRecord;
  task: { id: string; intent: string; subject: string };
  boundary: ToolBoundary;
  params: Record<string, unknown> | undefined;
  approvalId: string | undefined;
  /**
   * The hook for the policy evaluator: true when a determining Cedar policy demands approval (for
   * example a permit annotated `@approval("required")`), whatever the boundary's own rule says.
   */
  policyRequiresApproval?: boolean | undefined;
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
 * Step-up: the last check of a credential request, after the core checks passed. A repeat names
 * its approval, which must match the request exactly; a first request the boundary's rule catches
 * leaves a pending decision and an approval (or points at the one already pending for it).
 */
export class ApprovalGate {
  constructor(private readonly store: ApprovalStore) {}

  async check(input: GateInput): Promise<ApprovalVerdict> {
    const { decision, task, boundary } = input;
    const binding = {
      workloadId: decision.workloadId,
      taskId: task.id,
      boundaryId: boundary.id,
      action: decision.action,
      resource: decision.resource,
      paramsHash: paramsHash(input.params),
    };

    if (input.approvalId !== undefined) {
      const approval = await this.store.find(input.approvalId);
      // Another workload's approval is indistinguishable from a missing one.
      if (!approval || approval.workloadId !== decision.workloadId) return deny('unknown_approval', 'no such approval');
      if (!sameBinding(approval, binding)) return deny('approval_mismatch', 'the approval was given for a different request');
      const refusal = REFUSALS[approval.status];
      if (refusal) return deny(...refusal);
      if (approval.status === 'approved') return { outcome: 'consume', approvalId: approval.id };
      await this.store.recordPending(decision, approval.id, undefined);
      return { outcome: 'pending', approvalId: approval.id, expiresAt: approval.expiresAt };
    }

    if (!input.policyRequiresApproval && !(await this.ruleHolds(input))) return { outcome: 'none' };

    // Asking again without the id points at the approval already pending: reviewers see one request.
    const pending = await this.store.pendingFor(binding);
    if (pending) {
      await this.store.recordPending(decision, pending.id, undefined);
      return { outcome: 'pending', approvalId: pending.id, expiresAt: pending.expiresAt };
    }
    const approvalId = uuidv7(input.now);
    const expiresAt = input.now + (boundary.approval?.ttl ?? DEFAULT_APPROVAL_TTL_S) * 1000;
    await this.store.recordPending(decision, approvalId, { id: approvalId, paramsHash: binding.paramsHash, intent: task.intent, expiresAt });
    return { outcome: 'pending', approvalId, expiresAt: new Date(expiresAt) };
  }

  /** The boundary's approval rule, evaluated over the request model. */
  private async ruleHolds({ decision, task, boundary, params, now }: GateInput): Promise<boolean> {
    if (!boundary.approval) return false;
    const facts = await this.store.taskFacts(task.id);
    const model = requestModel({
      workloadId: decision.workloadId,
      task: { intent: task.intent, subject: task.subject, createdAt: facts.createdAt },
      boundary,
      action: decision.action,
      resource: decision.resource,
      params: params ?? null,
      purpose: decision.purpose,
      denialsInTask: facts.denials,
      now,
    });
    return requiresApproval(boundary, model);
  }
}

function deny(reason: ApprovalRefusal, description: string): ApprovalVerdict {
  return { outcome: 'deny', reason, description };
}
