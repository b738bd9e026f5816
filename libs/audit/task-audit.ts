import type { Sql } from '../db/database.js';

export interface StoredAuditEvent {
  id: string;
  at: Date;
  kind: string;
  actor: string;
  taskId: string | null;
  leaseId: string | null;
  data: Record<string, unknown>;
}

/** A task's audit events of the given kinds, oldest first (read through the by-task index). */
export async function auditEventsOfTask(sql: Sql, taskId: string, kinds: readonly string[], limit = 10_000): Promise<StoredAuditEvent[]> {
  const { rows } = await sql.query<{ id: string; at: Date; kind: string; actor: string; task_id: string | null; lease_id: string | null; data: Record<string, unknown> }>(
    `SELECT id, at, kind, actor, task_id, lease_id, data FROM audit_events
      WHERE task_id = $1 AND kind = ANY ($2::text[]) ORDER BY id LIMIT $3`,
    [taskId, kinds, limit],
  );
  return rows.map((row) => ({
    id: row.id,
    at: new Date(row.at),
    kind: row.kind,
    actor: row.actor,
    taskId: row.task_id,
    leaseId: row.lease_id,
    data: row.data,
  }));
}
