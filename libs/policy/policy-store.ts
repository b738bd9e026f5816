import type { Sql } from '../db/index.js';
import type { PolicySource } from './cedar.js';
import type { ParamsSchemas } from './boundary.js';
import type { GlobalPolicy, GlobalPolicyDefinition } from './policy.js';

const COLUMNS = 'id, version, policy, description, enabled, created_at';

/**
 * Names the enabled global policy set ('' when no policy is enabled): read with every request
 * context, compared again in the committing statement, so a permit decided under a policy set that
 * changed meanwhile is decided again. One row, bumped in the transaction of every policy write, so
 * the hot path reads it in O(1) whatever the number of policies.
 */
export const ACTIVE_POLICIES_KEY = `(SELECT CASE WHEN enabled > 0 THEN version::text ELSE '' END FROM policy_set_version)`;

/** SQL for global policy sets. Rows are never changed but for `superseded_at`: a change is a new version. */
export class PolicyStore {
  constructor(private readonly sql: Sql) {}

  async current(id: string, sql: Sql = this.sql): Promise<GlobalPolicy | undefined> {
    const { rows } = await sql.query<PolicyRow>(`SELECT ${COLUMNS} FROM policies WHERE id = $1 ORDER BY version DESC LIMIT 1`, [id]);
    return rows[0] && toPolicy(rows[0]);
  }

  async list(sql: Sql = this.sql): Promise<GlobalPolicy[]> {
    const { rows } = await sql.query<PolicyRow>(`SELECT ${COLUMNS} FROM policies WHERE superseded_at IS NULL ORDER BY id LIMIT 1000`);
    return rows.map(toPolicy);
  }

  /** The enabled global policies and the key naming exactly them, from one snapshot. */
  async active(sql: Sql = this.sql): Promise<{ key: string; sources: PolicySource[] }> {
    const { rows } = await sql.query<{ key: string; sources: PolicySource[] | null }>(
      `SELECT ${ACTIVE_POLICIES_KEY} AS key,
              (SELECT jsonb_agg(jsonb_build_object('id', id, 'version', version, 'text', policy, 'scope', 'global') ORDER BY id)
                 FROM policies WHERE superseded_at IS NULL AND enabled) AS sources`,
    );
    return { key: rows[0]!.key, sources: rows[0]!.sources ?? [] };
  }

  /**
   * Writes a new version unless unchanged, and bumps the policy set's version with it; run in a
   * transaction (the row lock orders concurrent PUTs of one id; the version row, all of them).
   */
  async put(
    id: string,
    definition: GlobalPolicyDefinition,
    tx: Sql,
  ): Promise<{ policy: GlobalPolicy; changed: boolean; created: boolean }> {
    const { rows } = await tx.query<PolicyRow>(`SELECT ${COLUMNS} FROM policies WHERE id = $1 ORDER BY version DESC LIMIT 1 FOR UPDATE`, [
      id,
    ]);
    const latest = rows[0] && toPolicy(rows[0]);
    if (
      latest &&
      latest.policy === definition.policy &&
      latest.description === definition.description &&
      latest.enabled === definition.enabled
    ) {
      return { policy: latest, changed: false, created: false };
    }
    if (latest) await tx.query('UPDATE policies SET superseded_at = now() WHERE id = $1 AND version = $2', [id, latest.version]);
    const inserted = await tx.query<PolicyRow>(
      `INSERT INTO policies (id, version, policy, description, enabled) VALUES ($1, $2, $3, $4, $5) RETURNING ${COLUMNS}`,
      [id, (latest?.version ?? 0) + 1, definition.policy, definition.description, definition.enabled],
    );
    const enabledDelta = (definition.enabled ? 1 : 0) - (latest?.enabled ? 1 : 0);
    await tx.query('UPDATE policy_set_version SET version = version + 1, enabled = enabled + $1', [enabledDelta]);
    return { policy: toPolicy(inserted.rows[0]!), changed: true, created: latest === undefined };
  }

  /** The actions of every current boundary (or of one): policies are validated against them. */
  async knownActions(boundaryId?: string): Promise<string[]> {
    const { rows } = await this.sql.query<{ action: string }>(
      `SELECT DISTINCT jsonb_array_elements_text(b.actions) AS action
         FROM boundaries b WHERE b.superseded_at IS NULL AND ($1::text IS NULL OR b.id = $1::text)`,
      [boundaryId ?? null],
    );
    return rows.map((row) => row.action);
  }

  /** Current boundaries' policies by boundary id, for a what-if replay. */
  async boundaryPolicies(
    sql: Sql = this.sql,
  ): Promise<Map<string, { version: number; tool: string; policy: string | null; paramsSchemas: ParamsSchemas | null }>> {
    const { rows } = await sql.query<{
      id: string;
      version: number;
      tool: string;
      policy: string | null;
      params_schemas: ParamsSchemas | null;
    }>('SELECT id, version, tool, policy, params_schemas FROM boundaries WHERE superseded_at IS NULL');
    return new Map(
      rows.map((row) => [row.id, { version: row.version, tool: row.tool, policy: row.policy, paramsSchemas: row.params_schemas ?? null }]),
    );
  }
}

interface PolicyRow {
  id: string;
  version: number;
  policy: string;
  description: string | null;
  enabled: boolean;
  created_at: Date;
}

function toPolicy(row: PolicyRow): GlobalPolicy {
  return {
    id: row.id,
    version: row.version,
    policy: row.policy,
    description: row.description,
    enabled: row.enabled,
    createdAt: new Date(row.created_at),
  };
}

/** A recorded decision as a what-if replay needs it: the request, the task then, the boundary then. */
export interface ReplayRow {
  id: string;
  workload_id: string;
  boundary_id: string;
  boundary_version: number;
  action: string;
  resource: string | null;
  outcome: 'permit' | 'deny';
  params: unknown;
  purpose: string | null;
  intent: string;
  subject: string;
  task_age_s: number | null;
  denials_in_task: number | null;
  /** The permit used a reviewer's approval. */
  approved: boolean;
  at_ms: number;
  tool: string;
  sensitivity: 'low' | 'medium' | 'high';
  actions: string[];
  intents: string[];
}

/**
 * One page of the decisions a policy could have changed, oldest id first: permits, and denials a
 * policy made (a denial of the core checks stays one whatever the policy). Rows recorded before
 * decisions carried their task's intent and subject cannot be replayed and are left out.
 */
export async function replayPage(
  sql: Sql,
  window: { since: Date; until: Date; boundaryId: string | undefined; after: string | undefined; limit: number },
): Promise<ReplayRow[]> {
  const { rows } = await sql.query<ReplayRow>(
    `SELECT d.id, d.workload_id, d.boundary_id, d.boundary_version, d.action, d.resource, d.outcome, d.params, d.purpose,
            d.intent, d.subject, d.task_age_s, d.denials_in_task, d.approval_id IS NOT NULL AS approved, (extract(epoch FROM d.at) * 1000)::float8 AS at_ms,
            b.tool, b.sensitivity, b.actions, b.intents
       FROM decisions d
       JOIN boundaries b ON b.id = d.boundary_id AND b.version = d.boundary_version
      WHERE d.at >= $1 AND d.at < $2 AND ($3::text IS NULL OR d.boundary_id = $3::text)
        AND ($4::uuid IS NULL OR d.id > $4::uuid) AND d.intent IS NOT NULL AND d.subject IS NOT NULL
        AND (d.outcome = 'permit' OR (d.outcome = 'deny' AND d.reasons <@ '["policy_forbid", "policy_no_permit"]'::jsonb AND d.reasons <> '[]'::jsonb))
      ORDER BY d.id
      LIMIT $5`,
    [window.since, window.until, window.boundaryId ?? null, window.after ?? null, window.limit],
    'tollgate_what_if_page',
  );
  return rows;
}
