import type { Sql } from '../db/index.js';
import { sameDefinition, type BoundaryDefinition, type ToolBoundary } from './boundary.js';

const COLUMNS =
  'id, version, tool, actions, intents, default_ttl, max_ttl, credential, sensitivity, drift_threshold, enabled, approval, policy, params_schemas, created_at';

/** SQL for tool boundaries. Rows are never updated: a change is a new version. */
export class BoundaryStore {
  constructor(private readonly sql: Sql) {}

  async current(id: string, sql: Sql = this.sql): Promise<ToolBoundary | undefined> {
    const { rows } = await sql.query<BoundaryRow>(`SELECT ${COLUMNS} FROM boundaries WHERE id = $1 ORDER BY version DESC LIMIT 1`, [id]);
    return rows[0] && toBoundary(rows[0]);
  }

  async list(sql: Sql = this.sql): Promise<ToolBoundary[]> {
    const { rows } = await sql.query<BoundaryRow>(
      `SELECT DISTINCT ON (id) ${COLUMNS} FROM boundaries ORDER BY id, version DESC LIMIT 1000`,
    );
    return rows.map(toBoundary);
  }

  /**
   * Writes a new version unless the definition is unchanged. Run in a transaction that holds the
   * boundary's writer lock (lockWriter, as Boundaries.put does): the row lock on the latest version
   * alone does not serialise writers (a second writer re-reads the same latest row after the wait and
   * fails on the primary key), the writer lock does; the contract test shows both.
   */
  async put(id: string, definition: BoundaryDefinition, tx: Sql): Promise<{ boundary: ToolBoundary; changed: boolean; created: boolean }> {
    const { rows } = await tx.query<BoundaryRow>(
      `SELECT ${COLUMNS} FROM boundaries WHERE id = $1 ORDER BY version DESC LIMIT 1 FOR UPDATE`,
      [id],
    );
    const latest = rows[0] && toBoundary(rows[0]);
    if (latest && sameDefinition(latest, definition)) return { boundary: latest, changed: false, created: false };
    if (latest) {
      // Updating the old row makes in-flight permits that locked it finish first, and later ones fail.
      await tx.query('UPDATE boundaries SET superseded_at = now() WHERE id = $1 AND version = $2', [id, latest.version]);
    }
    const inserted = await tx.query<BoundaryRow>(
      `INSERT INTO boundaries (id, version, tool, actions, intents, default_ttl, max_ttl, credential, sensitivity, enabled, approval, drift_threshold, policy, params_schemas)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING ${COLUMNS}`,
      [
        id,
        (latest?.version ?? 0) + 1,
        definition.tool,
        JSON.stringify(definition.actions),
        JSON.stringify(definition.intents),
        definition.defaultTtl,
        definition.maxTtl,
        JSON.stringify(definition.credential),
        definition.sensitivity,
        definition.enabled,
        definition.approval ? JSON.stringify(definition.approval) : null,
        definition.driftThreshold,
        definition.policy,
        definition.paramsSchemas ? JSON.stringify(definition.paramsSchemas) : null,
      ],
    );
    return { boundary: toBoundary(inserted.rows[0]!), changed: true, created: latest === undefined };
  }
}

export interface BoundaryRow {
  id: string;
  version: number;
  tool: string;
  actions: string[];
  intents: string[];
  default_ttl: number;
  max_ttl: number;
  credential: ToolBoundary['credential'];
  sensitivity: ToolBoundary['sensitivity'];
  drift_threshold: number | null;
  enabled: boolean;
  approval: ToolBoundary['approval'] | undefined;
  policy: string | null;
  params_schemas?: ToolBoundary['paramsSchemas'] | undefined;
  created_at: Date;
}

export function toBoundary(row: BoundaryRow): ToolBoundary {
  return {
    id: row.id,
    version: row.version,
    tool: row.tool,
    actions: row.actions,
    intents: row.intents,
    defaultTtl: row.default_ttl,
    maxTtl: row.max_ttl,
    credential: row.credential,
    sensitivity: row.sensitivity,
    driftThreshold: row.drift_threshold ?? null,
    enabled: row.enabled,
    approval: row.approval ?? null,
    policy: row.policy ?? null,
    paramsSchemas: row.params_schemas ?? null,
    createdAt: new Date(row.created_at),
  };
}
