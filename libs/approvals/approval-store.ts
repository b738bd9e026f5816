import type { Sql } from '../db/index.js';
import { appendEvents } from '../audit/index.js';
import { conditions } from '../db/index.js';
import { insertSelect } from '../db/index.js';
import type { Approval, ApprovalBinding, ApprovalStatus } from './approval.js';

/**
 * The status as of the database clock. `revoked` is stored: the change that kills an open approval
 * (its task ends or changes intent, its boundary is disabled) writes it by trigger (migration
 * 1764116520000), so an intent changed back cannot revive one. Only time is derived, so nothing
 * has to sweep it: an open approval past its time reads `expired`, one whose task is past its time
 * but not yet ended by the sweeper reads `revoked`. Every read and every write that matters
 * (approve, deny, the consuming permit) goes by these same conditions.
 */
const EFFECTIVE_STATUS = `CASE
    WHEN a.status IN ('pending', 'approved') AND a.expires_at <= now() THEN 'expired'
    WHEN a.status IN ('pending', 'approved') AND (t.state <> 'active' OR t.expires_at <= now()) THEN 'revoked'
    ELSE a.status END`;
const COLUMNS = `a.id, a.task_id, a.workload_id, a.boundary_id, a.boundary_version, a.action, a.resource, a.params,
  a.params_hash, a.purpose, a.ttl, a.intent, ${EFFECTIVE_STATUS} AS status, a.decision_id, a.requested_at, a.expires_at,
  a.decided_at, a.decided_by, a.reason, a.used_at, a.lease_id, a.revoked_at, a.revoke_reason`;
const FROM = 'approvals a JOIN tasks t ON t.id = a.task_id';

export interface NewApproval {
  id: string;
  paramsHash: string;
  intent: string;
  expiresAt: number;
  /** The lease ttl the request would get now: what the reviewer approves. */
  ttl: number;
}

export interface ApprovalFilter {
  status?: ApprovalStatus | undefined;
  task?: string | undefined;
  workload?: string | undefined;
  boundary?: string | undefined;
  since?: Date | undefined;
  until?: Date | undefined;
  cursor?: string | undefined;
  limit: number;
}

type ApprovalColumn =
  | 'id'
  | 'task_id'
  | 'workload_id'
  | 'boundary_id'
  | 'boundary_version'
  | 'action'
  | 'resource'
  | 'params'
  | 'params_hash'
  | 'purpose'
  | 'intent'
  | 'status'
  | 'decision_id'
  | 'requested_at'
  | 'expires_at'
  | 'ttl';

/**
 * The INSERT of a new approval, as a CTE body: the pending decision that asks for it is written in
 * the same statement (DecisionLedger.recordPending), so the approval and its decision commit together.
 */
export function insertApprovals(values: Record<ApprovalColumn, string>, from: string): string {
  return insertSelect<ApprovalColumn>('approvals', values, from);
}

/**
 * The approval a permit uses up, as a CTE body (DecisionLedger.recordPermit): approved, unexpired,
 * for this exact request and intent → used, with the lease it yielded. `when` is the permit's own
 * condition (its task and boundary still stand), so the approval is used only if the permit is written.
 */
export function useApproval(
  p: { id: string; taskId: string; workloadId: string; boundaryId: string; action: string; intent: string; leaseId: string },
  when: string,
): string {
  return `UPDATE approvals SET status = 'used', used_at = now(), lease_id = ${p.leaseId}
          WHERE id = ${p.id} AND task_id = ${p.taskId} AND workload_id = ${p.workloadId} AND boundary_id = ${p.boundaryId} AND action = ${p.action}
            AND status = 'approved' AND expires_at > now() AND intent = ${p.intent}
            AND ${when}
         RETURNING id`;
}

/**
 * SQL for approvals, their only writer. A pending decision that asks for one (DecisionLedger.recordPending)
 * and the permit that uses one up (DecisionLedger.recordPermit) write it in their own statement
 * through `insertApprovals` and `useApproval`.
 */
export class ApprovalStore {
  constructor(private readonly sql: Sql) {}

  /**
   * History retention: forgets the approvals asked for by the decisions of `decisionPartition` (a
   * month of decisions about to be dropped, named by the caller from the catalog), unless one is
   * still open (pending or approved, not expired): then it forgets nothing and returns how many
   * are open. Runs in the caller's transaction.
   */
  async forgetOfDecisionMonth(tx: Sql, decisionPartition: string): Promise<{ forgotten: number; open: number }> {
    const { rows } = await tx.query<{ n: number; open: number }>(
      `SELECT count(*)::int AS n,
              (count(*) FILTER (WHERE status IN ('pending', 'approved') AND expires_at > now()))::int AS open
         FROM approvals a WHERE a.decision_id IN (SELECT id FROM ${decisionPartition})`,
    );
    const { n, open } = rows[0]!;
    if (open > 0 || n === 0) return { forgotten: 0, open };
    await tx.query(`DELETE FROM approvals a WHERE a.decision_id IN (SELECT id FROM ${decisionPartition})`);
    return { forgotten: n, open: 0 };
  }

  async find(id: string, sql: Sql = this.sql): Promise<Approval | undefined> {
    const { rows } = await sql.query<ApprovalRow>(`SELECT ${COLUMNS} FROM ${FROM} WHERE a.id = $1`, [id], 'tollgate_approval_find');
    return rows[0] && toApproval(rows[0]);
  }

  /** The still-pending approval for exactly this request, if one was asked for already. */
  async pendingFor(binding: ApprovalBinding): Promise<Approval | undefined> {
    const { rows } = await this.sql.query<ApprovalRow>(
      `SELECT ${COLUMNS} FROM ${FROM}
        WHERE a.task_id = $1 AND a.workload_id = $2 AND a.boundary_id = $3 AND a.action = $4
          AND a.resource IS NOT DISTINCT FROM $5::text AND a.params_hash = $6 AND a.purpose IS NOT DISTINCT FROM $7::text
          AND a.status = 'pending'
          AND ${EFFECTIVE_STATUS} = 'pending'
        ORDER BY a.id DESC LIMIT 1`,
      [binding.taskId, binding.workloadId, binding.boundaryId, binding.action, binding.resource, binding.paramsHash, binding.purpose],
    );
    return rows[0] && toApproval(rows[0]);
  }

  /**
   * Approves or denies a pending approval that is still open (not expired, its task active with the
   * same intent); returns it, or undefined when it was not open. The row lock makes two reviewers
   * deciding at once settle on one verdict. The approval.approved / approval.denied event is
   * written by the same statement, without the reviewer's reason (free text).
   */
  async decide(tx: Sql, id: string, verdict: 'approved' | 'denied', actor: string, reason: string): Promise<Approval | undefined> {
    const { rows } = await tx.query<{ id: string }>(
      `WITH decided AS (
         UPDATE approvals a SET status = $2, decided_at = now(), decided_by = $3, reason = $4
           FROM tasks t
          WHERE a.id = $1 AND t.id = a.task_id AND a.status = 'pending' AND a.expires_at > now()
            AND t.state = 'active' AND t.expires_at > now() AND t.intent = a.intent
          RETURNING a.id, a.task_id, a.workload_id, a.boundary_id
       ), announced AS (
         ${appendEvents(
           {
             type: "'approval.' || $2::text",
             approval_id: 'id',
             task_id: 'task_id',
             workload_id: 'workload_id',
             boundary_id: 'boundary_id',
             reason: '$2::text',
           },
           'FROM decided',
         )}
       )
       SELECT id FROM decided`,
      [id, verdict, actor, reason],
    );
    return rows[0] ? this.find(id, tx) : undefined;
  }

  async list(filter: ApprovalFilter): Promise<Approval[]> {
    const { where, params } = conditions([
      [`${EFFECTIVE_STATUS} = ?`, filter.status],
      ['a.task_id = ?', filter.task],
      ['a.workload_id = ?', filter.workload],
      ['a.boundary_id = ?', filter.boundary],
      ['a.requested_at >= ?', filter.since],
      ['a.requested_at < ?', filter.until],
      ['a.id < ?', filter.cursor],
    ]);
    params.push(filter.limit);
    const { rows } = await this.sql.query<ApprovalRow>(
      `SELECT ${COLUMNS} FROM ${FROM} ${where}
        ORDER BY a.id DESC LIMIT $${params.length}`,
      params,
    );
    return rows.map(toApproval);
  }
}

interface ApprovalRow {
  id: string;
  task_id: string;
  workload_id: string;
  boundary_id: string;
  boundary_version: number;
  action: string;
  resource: string | null;
  params: Record<string, unknown> | null;
  params_hash: string;
  purpose: string | null;
  ttl: number;
  intent: string;
  status: ApprovalStatus;
  decision_id: string;
  requested_at: Date;
  expires_at: Date;
  decided_at: Date | null;
  decided_by: string | null;
  reason: string | null;
  used_at: Date | null;
  lease_id: string | null;
  revoked_at: Date | null;
  revoke_reason: string | null;
}

function toApproval(row: ApprovalRow): Approval {
  return {
    id: row.id,
    taskId: row.task_id,
    workloadId: row.workload_id,
    boundaryId: row.boundary_id,
    boundaryVersion: row.boundary_version,
    action: row.action,
    resource: row.resource,
    params: row.params,
    paramsHash: row.params_hash,
    purpose: row.purpose,
    ttl: row.ttl,
    intent: row.intent,
    status: row.status,
    decisionId: row.decision_id,
    requestedAt: new Date(row.requested_at),
    expiresAt: new Date(row.expires_at),
    decidedAt: row.decided_at ? new Date(row.decided_at) : null,
    decidedBy: row.decided_by,
    reason: row.reason,
    usedAt: row.used_at ? new Date(row.used_at) : null,
    leaseId: row.lease_id,
    revokedAt: row.revoked_at ? new Date(row.revoked_at) : null,
    revokeReason: row.revoke_reason,
  };
}
