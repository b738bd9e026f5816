import type { Approval } from '../approvals/index.js';
import type { AuditRecord } from '../audit/index.js';
import type { Decision, Lease } from '../leases/index.js';
import type { Task, TaskEvent } from '../tasks/index.js';

/** One step of a task's story. `detail` is named as the review API spells it (snake_case). */
export interface TimelineEvent {
  at: Date;
  kind: TimelineKind;
  detail: Record<string, unknown>;
}

/** Every kind of timeline event, in the order the review API documents them. */
export const TIMELINE_KINDS = [
  'task.opened',
  'task.intent_changed',
  'task.completed',
  'task.revoked',
  'task.expired',
  'decision.permit',
  'decision.deny',
  'decision.pending',
  'approval.approved',
  'approval.denied',
  'lease.issued',
  'lease.revoked',
  'lease.expired',
  // Audit events that say something the rows do not (TIMELINE_AUDIT_KINDS).
  'task.drift_suspended',
  'credential.mint_failed',
  'lease.revoked_at_source',
  'lease.revoke_failed',
] as const;

export type TimelineKind = (typeof TIMELINE_KINDS)[number];

/**
 * Audit events that say something the task, decision, lease and approval rows do not: the drift
 * suspension (its threshold and the denials it counted), and what a credential's source answered.
 */
export const TIMELINE_AUDIT_KINDS = [
  'task.drift_suspended',
  'credential.mint_failed',
  'lease.revoked_at_source',
  'lease.revoke_failed',
] as const satisfies readonly TimelineKind[];

export interface TimelineSources {
  task: Task;
  events: readonly TaskEvent[];
  decisions: readonly Decision[];
  leases: readonly Lease[];
  approvals: readonly Approval[];
  audit: readonly (Pick<AuditRecord, 'kind' | 'actor' | 'leaseId' | 'data'> & { at: Date })[];
}

/**
 * Events that share a time (one transaction's now()) are told in cause-and-effect order: the
 * intent change before the leases it revoked, a decision before the lease it issued, the leases a
 * completion revoked before the completion itself.
 */
const RANK: Record<string, number> = {
  'task.opened': 0,
  'task.intent_changed': 1,
  'decision.permit': 2,
  'decision.deny': 2,
  'decision.pending': 2,
  'approval.approved': 3,
  'approval.denied': 3,
  'lease.issued': 4,
  'lease.revoked': 5,
  'lease.expired': 5,
  'task.completed': 7,
  'task.revoked': 7,
  'task.expired': 7,
};
const AUDIT_RANK = 6;

/** A task's story in time order, from its rows. Pure: the caller reads the rows. */
export function taskTimeline(sources: TimelineSources): TimelineEvent[] {
  const out: Array<TimelineEvent & { order: number }> = [];
  let order = 0;
  const push = (at: Date, kind: TimelineKind, detail: Record<string, unknown>) => out.push({ at, kind, detail, order: order++ });

  let intent: string | null = null;
  for (const event of sources.events) {
    if (event.kind === 'opened') {
      push(event.at, 'task.opened', { intent: event.intent, subject: sources.task.subject, workload_id: sources.task.workloadId });
    } else if (event.kind === 'intent_changed') {
      push(event.at, 'task.intent_changed', { from: intent, intent: event.intent, reason: event.reason });
    } else {
      push(event.at, `task.${event.kind}`, { reason: event.reason });
    }
    if (event.intent !== null) intent = event.intent;
  }

  const approvalOf = new Map(sources.approvals.map((approval) => [approval.decisionId, approval]));
  for (const decision of sources.decisions) {
    const approval = approvalOf.get(decision.id);
    push(decision.at, `decision.${decision.outcome}`, {
      decision_id: decision.id,
      boundary_id: decision.boundaryId,
      boundary_version: decision.boundaryVersion,
      action: decision.action,
      resource: decision.resource,
      reasons: decision.reasons,
      ...(decision.drift ? { drift: decision.drift } : {}),
      ...(decision.leaseId ? { lease_id: decision.leaseId } : {}),
      ...(approval ? { approval_id: approval.id } : {}),
    });
  }

  for (const approval of sources.approvals) {
    if (!approval.decidedAt) continue;
    // Stored verdicts only: used/expired/revoked approvals were approved or denied first, or never decided.
    const verdict = approval.decidedBy === null ? undefined : approval.status === 'denied' ? 'approval.denied' : 'approval.approved';
    if (verdict) push(approval.decidedAt, verdict, { approval_id: approval.id, decided_by: approval.decidedBy, reason: approval.reason });
  }

  for (const lease of sources.leases) {
    push(lease.issuedAt, 'lease.issued', {
      lease_id: lease.id,
      boundary_id: lease.boundaryId,
      boundary_version: lease.boundaryVersion,
      action: lease.action,
      resource: lease.resource,
      credential_kind: lease.credentialKind,
      expires_at: lease.expiresAt.toISOString(),
    });
    if (lease.revokedAt) {
      push(lease.revokedAt, 'lease.revoked', { lease_id: lease.id, reason: lease.revokeReason, state: lease.state });
    } else if (lease.state === 'expired') {
      // Read as of the database clock, so a lease past its time shows expired before any sweep.
      push(lease.expiresAt, 'lease.expired', { lease_id: lease.id });
    }
  }

  for (const event of sources.audit) {
    push(event.at, event.kind as TimelineKind, {
      actor: event.actor,
      ...(event.leaseId ? { lease_id: event.leaseId } : {}),
      ...event.data,
    });
  }

  out.sort((a, b) => a.at.getTime() - b.at.getTime() || (RANK[a.kind] ?? AUDIT_RANK) - (RANK[b.kind] ?? AUDIT_RANK) || a.order - b.order);
  return out.map(({ at, kind, detail }) => ({ at, kind, detail }));
}
