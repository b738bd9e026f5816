import { AsyncLocalStorage } from 'node:async_hooks';
import type { Sql } from '../db/index.js';
import { insertSelect } from '../db/index.js';
import { uuidv7 } from '../ids/index.js';

/** Every state change and decision leaves one of these. Tokens and secrets appear only as hashes. */
export const AUDIT_KINDS = [
  'issuer.put',
  'issuer.withdrawn',
  'workload.put',
  'workload.deleted',
  'workload.revoked',
  'api_key.created',
  'api_key.revoked',
  'boundary.put',
  'boundary.disabled',
  'policy.put',
  'policy.disabled',
  'task.opened',
  'task.intent_changed',
  'task.completed',
  'task.expired',
  'task.revoked',
  'task.drift_suspended',
  'credential.permit',
  'credential.deny',
  'credential.pending',
  'approval.approved',
  'approval.denied',
  'credential.issued',
  'credential.mint_failed',
  'lease.revoked_at_source',
  'lease.revoke_failed',
  'lease.revoked',
  'leases.revoked',
  'leases.expired',
  'signing_key.rotated',
  'signing_key.resealed',
  'signing_key.publish_until',
  'aws_sts.revocation_cutoff',
  'history.pruned',
] as const;
export type AuditKind = (typeof AUDIT_KINDS)[number];

export interface AuditEvent {
  kind: AuditKind;
  /** Who caused it: `workload:<id>`, `admin`, `<role>:<API key id>`, `system:start`, `system:sweeper` or `system:key-rotation`. */
  actor: string;
  taskId?: string | undefined;
  leaseId?: string | undefined;
  data?: Record<string, unknown>;
}

export async function appendAudit(sql: Sql, ...events: AuditEvent[]): Promise<void> {
  if (events.length === 0) return;
  const requestId = requestScope.getStore()?.requestId;
  const values: unknown[] = [];
  const tuples = events.map((event, i) => {
    const data = auditData(event.data ?? {}, requestId);
    values.push(uuidv7(), event.kind, event.actor, event.taskId ?? null, event.leaseId ?? null, JSON.stringify(data));
    const p = i * 6;
    return `($${p + 1}, $${p + 2}, $${p + 3}, $${p + 4}, $${p + 5}, $${p + 6})`;
  });
  await sql.query(`INSERT INTO audit_events (id, kind, actor, task_id, lease_id, data) VALUES ${tuples.join(', ')}`, values);
}

/**
 * Audit events written by a statement that does the change they record (a permit, a revocation,
 * an expiry batch), as a CTE body: the event commits with its change or not at all. `values` are
 * SQL expressions over the rows of `from` (a FROM clause, with its WHERE / HAVING); `data` must
 * carry the request id itself (auditData) when the event is about a request.
 */
export function appendAuditFrom(
  kind: AuditKind,
  values: { id: string; actor: string; task_id?: string; lease_id?: string; data: string },
  from: string,
): string {
  const { id, actor, task_id, lease_id, data } = values;
  return insertSelect('audit_events', { id, kind: `'${kind}'`, actor, task_id, lease_id, data }, from);
}

/**
 * The HTTP request being served, for the events and log lines it causes: its id (x-request-id)
 * goes into each audit event's `data.request_id`, inside the hash chain, so an operator can join
 * a log line, a client's report and the audit trail. Background work runs outside any request.
 */
export const requestScope = new AsyncLocalStorage<{ requestId: string }>();

/** An audit event's data with the id of the request being served, if any (see requestScope). */
export function auditData(data: Record<string, unknown>, requestId = requestScope.getStore()?.requestId): Record<string, unknown> {
  return requestId === undefined ? data : { ...data, request_id: requestId };
}
