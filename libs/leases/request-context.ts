import type { Sql } from '../db/index.js';
import { toBoundary, type BoundaryRow } from '../policy/index.js';
import { ACTIVE_POLICIES_KEY } from '../policy/index.js';
import type { ToolBoundary } from '../policy/index.js';

export interface RequestContext {
  /** The database clock, in milliseconds. */
  now: number;
  task:
    | {
        id: string;
        workloadId: string;
        intent: string;
        subject: string;
        state: string;
        expiresAt: number;
        createdAt: number;
        /** The task's denials so far; counted only when a policy or approval rule may read it (else 0). */
        denials: number;
      }
    | undefined;
  boundary: ToolBoundary | undefined;
  /** Names the enabled global policy versions ('' when none): see ACTIVE_POLICIES_KEY. */
  policiesKey: string;
}

/** The hot path's one read: what a credential request is decided on. It writes nothing. */
export class RequestContextReader {
  constructor(private readonly sql: Sql) {}

  /** One round trip: the database clock, the task, and the boundary's current version. */
  async requestContext(taskId: string, boundaryId: string): Promise<RequestContext> {
    const { rows } = await this.sql.query<ContextRow>(
      `SELECT (extract(epoch FROM now()) * 1000)::float8 AS now_ms,
              t.id AS task_id, t.workload_id, t.intent, t.subject, t.state AS task_state,
              (extract(epoch FROM t.expires_at) * 1000)::float8 AS task_expires_ms,
              (extract(epoch FROM t.created_at) * 1000)::float8 AS task_created_ms,
              b.id, b.version, b.tool, b.actions, b.intents, b.default_ttl, b.max_ttl, b.credential,
              b.sensitivity, b.drift_threshold, b.enabled, b.approval, b.policy, b.params_schemas, b.created_at, p.key AS policies_key,
              -- Counted only when Cedar may read it (a policy or an approval rule): other requests do not pay for it.
              CASE WHEN t.id IS NOT NULL AND (b.policy IS NOT NULL OR p.key <> '' OR b.approval IS NOT NULL)
                   THEN (SELECT count(*) FROM decisions d WHERE d.task_id = t.id AND d.outcome = 'deny')::int
                   ELSE 0 END AS denials
         FROM (SELECT ${ACTIVE_POLICIES_KEY} AS key) AS p
         LEFT JOIN tasks t ON t.id = $1
         LEFT JOIN LATERAL (SELECT * FROM boundaries WHERE id = $2 ORDER BY version DESC LIMIT 1) b ON true`,
      [taskId, boundaryId],
      'tollgate_request_context',
    );
    const row = rows[0]!;
    return {
      now: Number(row.now_ms),
      task: row.task_id
        ? {
            id: row.task_id,
            workloadId: row.workload_id!,
            intent: row.intent!,
            subject: row.subject!,
            state: row.task_state!,
            expiresAt: Number(row.task_expires_ms),
            createdAt: Number(row.task_created_ms),
            denials: Number(row.denials),
          }
        : undefined,
      boundary: row.id ? toBoundary(row as BoundaryRow) : undefined,
      policiesKey: row.policies_key,
    };
  }
}

interface ContextRow extends Partial<BoundaryRow> {
  now_ms: number | string;
  task_id: string | null;
  workload_id: string | null;
  intent: string | null;
  subject: string | null;
  task_state: string | null;
  task_expires_ms: number | string | null;
  task_created_ms: number | string | null;
  policies_key: string;
  denials: number;
}
