import type { Approval } from '../../../libs/approvals/approval.js';
import type { ChainReport } from '../../../libs/audit/audit-log.js';
import type { AuditRecord } from '../../../libs/audit/audit-store.js';
import type { Checkpoint } from '../../../libs/audit/checkpoint.js';
import type { ApiKey } from '../../../libs/identity/api-key.js';
import type { Issuer } from '../../../libs/identity/issuer.js';
import type { Workload } from '../../../libs/identity/workload.js';
import type { Decision, Lease } from '../../../libs/leases/lease.js';
import type { ToolBoundary } from '../../../libs/policy/boundary.js';
import type { GlobalPolicy } from '../../../libs/policy/policy.js';
import type { Simulation } from '../../../libs/policy/simulate.js';
import type { WhatIfResult } from '../../../libs/policy/what-if.js';
import type { Task, TaskEvent } from '../../../libs/tasks/task.js';
import type { TimelineEvent } from '../../../libs/review/timeline.js';

/** Domain objects as the HTTP contract spells them (snake_case, RFC 3339 times). */

export function boundaryView(boundary: ToolBoundary) {
  return {
    id: boundary.id,
    version: boundary.version,
    tool: boundary.tool,
    actions: boundary.actions,
    intents: boundary.intents,
    default_ttl: boundary.defaultTtl,
    max_ttl: boundary.maxTtl,
    credential: boundary.credential,
    sensitivity: boundary.sensitivity,
    // Shown only when set, so a boundary that leaves it to the global setting reads as before.
    ...(boundary.driftThreshold === null ? {} : { drift_threshold: boundary.driftThreshold }),
    enabled: boundary.enabled,
    ...(boundary.approval ? { approval: { when: boundary.approval.when, ttl: boundary.approval.ttl } } : {}),
    ...(boundary.policy !== null ? { policy: boundary.policy } : {}),
    created_at: boundary.createdAt.toISOString(),
  };
}

/** An approval as reviewers see it: the exact request it is bound to, and who decided it and why. */
export function approvalView(approval: Approval) {
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

/** An API key without its key material: the key is shown once, at creation, and never stored. */
export function apiKeyView(key: ApiKey) {
  return {
    id: key.id,
    role: key.role,
    ...(key.audience === null ? {} : { audience: key.audience }),
    ...(key.label === null ? {} : { label: key.label }),
    ...(key.jwks === null ? {} : { jwks: key.jwks }),
    created_at: key.createdAt.toISOString(),
    revoked_at: key.revokedAt?.toISOString() ?? null,
  };
}

export function workloadView(workload: Workload) {
  return {
    id: workload.id,
    ...(workload.jwks ? { jwks: workload.jwks } : { issuer: workload.issuerId, subject: workload.subject }),
    enabled: workload.enabled,
    // Absent when the service's limit applies, as other views leave out what is not set.
    ...(workload.rateLimit ? { rate_limit: { [`per_${workload.rateLimit.per}`]: workload.rateLimit.requests, burst: workload.rateLimit.burst } } : {}),
    revision: workload.revision,
    created_at: workload.createdAt.toISOString(),
    updated_at: workload.updatedAt.toISOString(),
  };
}

export function issuerView(issuer: Issuer) {
  return {
    id: issuer.id,
    issuer: issuer.issuer,
    kind: issuer.kind,
    ...(issuer.trustDomain === null ? {} : { trust_domain: issuer.trustDomain }),
    ...(issuer.jwksUri === null ? { jwks: issuer.jwks } : { jwks_uri: issuer.jwksUri }),
    audiences: issuer.audiences,
    enabled: issuer.enabled,
    revision: issuer.revision,
    created_at: issuer.createdAt.toISOString(),
    updated_at: issuer.updatedAt.toISOString(),
  };
}

export function taskView(task: Task) {
  return {
    task_id: task.id,
    workload_id: task.workloadId,
    intent: task.intent,
    subject: task.subject,
    context: task.context,
    state: task.state,
    created_at: task.createdAt.toISOString(),
    expires_at: task.expiresAt.toISOString(),
    ended_at: task.endedAt?.toISOString() ?? null,
    end_reason: task.endReason,
  };
}

export function taskEventView(event: TaskEvent) {
  return { event_id: event.id, kind: event.kind, intent: event.intent, reason: event.reason, at: event.at.toISOString() };
}

export function leaseView(lease: Lease) {
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

export function decisionView(decision: Decision) {
  return {
    decision_id: decision.id,
    task_id: decision.taskId,
    workload_id: decision.workloadId,
    boundary_id: decision.boundaryId,
    boundary_version: decision.boundaryVersion,
    action: decision.action,
    resource: decision.resource,
    outcome: decision.outcome,
    reasons: decision.reasons,
    drift: decision.drift,
    policies: decision.policies,
    lease_id: decision.leaseId,
    lease_state: decision.leaseState,
    at: decision.at.toISOString(),
  };
}

/** A timeline event: when, what, and what the rows say about it. */
export function timelineEventView(event: TimelineEvent) {
  return { at: event.at.toISOString(), kind: event.kind, ...event.detail };
}

export function policyView(policy: GlobalPolicy) {
  return {
    id: policy.id,
    version: policy.version,
    policy: policy.policy,
    description: policy.description,
    enabled: policy.enabled,
    created_at: policy.createdAt.toISOString(),
  };
}

export function simulationView(simulation: Simulation) {
  return {
    decision: simulation.decision,
    reasons: simulation.reasons,
    policies: simulation.policies,
    errors: simulation.errors,
    approval_required: simulation.approvalRequired,
    boundary_version: simulation.boundaryVersion,
  };
}

export function whatIfView(result: WhatIfResult) {
  return {
    since: result.since.toISOString(),
    until: result.until.toISOString(),
    replayed: result.replayed,
    truncated: result.truncated,
    permits_now_denied: result.permitsNowDenied,
    denials_now_permitted: result.denialsNowPermitted,
    elapsed_ms: Math.round(result.elapsedMs * 10) / 10,
    decisions_per_second: result.decisionsPerSecond,
  };
}

export function auditEventView(event: AuditRecord) {
  return {
    id: event.id,
    seq: event.seq,
    at: event.at,
    kind: event.kind,
    actor: event.actor,
    task_id: event.taskId,
    lease_id: event.leaseId,
    data: event.data,
    prev_hash: event.prevHash,
    hash: event.hash,
  };
}

export function chainReportView(report: ChainReport) {
  return {
    ok: report.ok,
    verified: report.verified,
    head: report.head,
    unchained: report.unchained,
    ...(report.firstBroken ? { first_broken: report.firstBroken } : {}),
  };
}

export function checkpointView(checkpoint: Checkpoint) {
  return { checkpoint: checkpoint.checkpoint, seq: checkpoint.seq, hash: checkpoint.hash, issued_at: new Date(checkpoint.issuedAt).toISOString() };
}
