import type { Sql } from '../db/index.js';
import { conditions } from '../db/index.js';
import type { Decision, LeaseFilter, LeaseState } from './lease.js';
import { EFFECTIVE_STATE } from './effective-state.js';

export interface DecisionFilter extends Omit<LeaseFilter, 'state'> {
  outcome?: 'permit' | 'deny' | 'pending' | undefined;
}

/**
 * Decisions for review, newest first, with the review filters: the read half of the decision
 * ledger (DecisionLedger.listDecisions answers with it), kept apart from the ledger's statements.
 */
export async function listDecisions(sql: Sql, filter: DecisionFilter): Promise<Decision[]> {
  const { where, params } = conditions([
    ['d.task_id = ?', filter.task],
    ['d.workload_id = ?', filter.workload],
    ['d.boundary_id = ?', filter.boundary],
    ['d.task_id IN (SELECT s.id FROM tasks s WHERE s.subject = ?)', filter.subject],
    ['EXISTS (SELECT 1 FROM boundaries b WHERE b.id = d.boundary_id AND b.version = d.boundary_version AND b.tool = ?)', filter.tool],
    ['d.action = ?', filter.action],
    ['d.outcome = ?', filter.outcome],
    ['d.at >= ?', filter.since],
    ['d.at < ?', filter.until],
    ['d.id < ?', filter.cursor],
  ]);
  params.push(filter.limit);
  const { rows } = await sql.query<DecisionRow>(
    `SELECT d.id, d.task_id, d.workload_id, d.boundary_id, d.boundary_version, d.action, d.resource, d.outcome, d.reasons, d.policies, d.at,
              CASE WHEN dd.n IS NULL THEN NULL
                   WHEN t.end_reason = 'drift_detected' AND dd.n = t.drift_count THEN 'suspended_task'
                   ELSE 'counted' END AS drift,
              l.id AS lease_id, l.state AS lease_state
         FROM decisions d
         LEFT JOIN task_drift_denials dd ON dd.task_id = d.task_id AND dd.decision_id = d.id
         LEFT JOIN tasks t ON t.id = dd.task_id
         -- A permit's lease, found through the task's leases (indexed by task) rather than a scan by decision.
         LEFT JOIN LATERAL (
           SELECT l.id, ${EFFECTIVE_STATE} AS state FROM leases l
            WHERE d.outcome = 'permit' AND l.task_id = d.task_id AND l.decision_id = d.id LIMIT 1
         ) l ON true
         ${where}
        ORDER BY d.id DESC LIMIT $${params.length}`,
    params,
  );
  return rows.map((row) => ({
    id: row.id,
    taskId: row.task_id,
    workloadId: row.workload_id,
    boundaryId: row.boundary_id,
    boundaryVersion: row.boundary_version,
    action: row.action,
    resource: row.resource,
    outcome: row.outcome,
    reasons: row.reasons,
    drift: row.drift,
    policies: row.policies ?? null,
    leaseId: row.lease_id,
    leaseState: row.lease_state,
    at: new Date(row.at),
  }));
}

interface DecisionRow {
  id: string;
  task_id: string | null;
  workload_id: string;
  boundary_id: string | null;
  boundary_version: number | null;
  action: string | null;
  resource: string | null;
  outcome: Decision['outcome'];
  reasons: string[];
  drift: Decision['drift'];
  policies: { id: string; version: number }[] | null;
  lease_id: string | null;
  lease_state: LeaseState | null;
  at: Date;
}
