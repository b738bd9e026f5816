import type { PendingDecision } from '../approvals/index.js';
import type { LeaseRecord } from './lease-store.js';
import type { PolicyRef } from '../policy/index.js';

// What the decision ledger's statements take: a request's rows as the caller fixed them, the
// parameters of a single-row statement, and one row of a multi-row statement's jsonb input.

/** A permit's or a denial's decision row (a pending one is just a PendingDecision). */
export interface DecisionRecord extends PendingDecision {
  outcome: 'permit' | 'deny';
  reasons: readonly string[];
  /** What a what-if replay needs of the task, as it was when decided (null without a task). */
  intent?: string | null;
  subject?: string | null;
  taskAgeS?: number | null;
  denialsInTask?: number | null;
  /** The Cedar policy sets that decided, when policies applied. */
  policies?: readonly PolicyRef[] | null;
}

/**
 * The first eleven parameters of every statement that writes a decision row ($1 to $11): id, task,
 * workload, boundary and version, action, resource, params, purpose, requested ttl, time.
 */
export function decisionParams(decision: PendingDecision): unknown[] {
  return [
    decision.id,
    decision.taskId,
    decision.workloadId,
    decision.boundaryId,
    decision.boundaryVersion,
    decision.action,
    decision.resource,
    JSON.stringify(decision.params ?? null),
    decision.purpose,
    decision.requestedTtl,
    decision.at,
  ];
}

/** A permit as recordPermit takes it, with what must be fixed in the caller's own request scope. */
export interface PermitInput {
  decision: DecisionRecord;
  lease: LeaseRecord;
  intent: string;
  audit: Record<string, unknown>;
  auditId: string;
  policiesKey: string;
}

/** The columns of one row of writePermits' input (permitRow gives the values, by these names). */
export const PERMIT_ROW_COLUMNS = `decision_id uuid, task_id uuid, workload_id text, boundary_id text, boundary_version int, action text,
  resource text, params jsonb, purpose text, requested_ttl int, at float8, lease_id uuid, credential_kind text, expires_at float8,
  audit_id uuid, audit jsonb, intent text, policies_key text, policies jsonb, subject text, task_age_s int, denials_in_task int,
  external boolean, params_digest text`;

export function permitRow({ decision, lease, intent, audit, auditId, policiesKey }: PermitInput): Record<string, unknown> {
  return {
    ...decisionFields(decision),
    lease_id: lease.id,
    credential_kind: lease.credentialKind,
    expires_at: lease.expiresAt,
    audit_id: auditId,
    audit,
    intent,
    policies_key: policiesKey,
    ...decisionContext(decision),
    external: lease.external === true,
    params_digest: lease.paramsDigest ?? null,
  };
}

/** A denial as recordDenial takes it, with what must be fixed in the caller's own request scope. */
export interface DenialInput {
  decision: DecisionRecord;
  decidedOn: { intent: string; policiesKey?: string } | undefined;
  driftThreshold: number | undefined;
  audit: Record<string, unknown>;
  auditId: string;
  taskEventId: string;
  suspensionId: string;
}

/** The columns of one row of writeDenials' input (denialRow gives the values, by these names). */
export const DENIAL_ROW_COLUMNS = `decision_id uuid, task_id uuid, workload_id text, boundary_id text, boundary_version int, action text,
  resource text, params jsonb, purpose text, requested_ttl int, at float8, reasons jsonb, audit_id uuid, audit jsonb,
  decided_on boolean, decided_intent text, decided_policies_key text, policies jsonb, intent text, subject text, task_age_s int,
  denials_in_task int, drift_threshold int, task_event_id uuid, suspension_id uuid`;

export function denialRow({
  decision,
  decidedOn,
  driftThreshold,
  audit,
  auditId,
  taskEventId,
  suspensionId,
}: DenialInput): Record<string, unknown> {
  return {
    ...decisionFields(decision),
    reasons: decision.reasons,
    audit_id: auditId,
    audit,
    decided_on: decidedOn !== undefined,
    decided_intent: decidedOn?.intent ?? null,
    decided_policies_key: decidedOn?.policiesKey ?? null,
    ...decisionContext(decision),
    intent: decision.intent ?? null,
    drift_threshold: driftThreshold ?? null,
    task_event_id: taskEventId,
    suspension_id: suspensionId,
  };
}

/** The decision's own columns, the same in a permit row and a denial row. */
function decisionFields(decision: DecisionRecord): Record<string, unknown> {
  return {
    decision_id: decision.id,
    task_id: decision.taskId,
    workload_id: decision.workloadId,
    boundary_id: decision.boundaryId,
    boundary_version: decision.boundaryVersion,
    action: decision.action,
    resource: decision.resource,
    params: decision.params ?? null,
    purpose: decision.purpose,
    requested_ttl: decision.requestedTtl,
    at: decision.at,
  };
}

/** What the decision was made in view of (the review's columns), the same in both rows. */
function decisionContext(decision: DecisionRecord): Record<string, unknown> {
  return {
    policies: decision.policies ?? null,
    subject: decision.subject ?? null,
    task_age_s: decision.taskAgeS ?? null,
    denials_in_task: decision.denialsInTask ?? null,
  };
}
