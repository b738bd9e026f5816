import type { JWK } from 'jose';
import type { Sql } from '../db/database.js';
import type { Workload } from './workload.js';

/** SQL for workloads. */
export class WorkloadStore {
  constructor(private readonly sql: Sql) {}

  async find(id: string, sql: Sql = this.sql): Promise<Workload | undefined> {
    const { rows } = await sql.query<WorkloadRow>(
      'SELECT id, jwks, enabled, revision, created_at, updated_at FROM workloads WHERE id = $1',
      [id],
      'tollgate_workload_find',
    );
    return rows[0] && toWorkload(rows[0]);
  }

  /**
   * Creates a workload or replaces its keys. An existing workload keeps its enabled state unless
   * `enabled` says otherwise: re-applying the same configuration must not undo a kill switch.
   */
  async put(
    id: string,
    jwks: { keys: JWK[] },
    enabled: boolean | undefined,
    sql: Sql = this.sql,
  ): Promise<{ workload: Workload; created: boolean }> {
    const { rows } = await sql.query<WorkloadRow & { created: boolean }>(
      `INSERT INTO workloads (id, jwks, enabled) VALUES ($1, $2, coalesce($3::boolean, true))
       ON CONFLICT (id) DO UPDATE SET jwks = EXCLUDED.jwks, enabled = coalesce($3::boolean, workloads.enabled),
         revision = workloads.revision + 1, updated_at = now()
       RETURNING id, jwks, enabled, revision, created_at, updated_at, (xmax = 0) AS created`,
      [id, JSON.stringify(jwks), enabled ?? null],
    );
    const row = rows[0]!;
    return { workload: toWorkload(row), created: row.created };
  }

  /** Disables a workload (the kill switch) and records the revocation event. */
  async disable(id: string, sql: Sql = this.sql): Promise<Workload | undefined> {
    const { rows } = await sql.query<WorkloadRow>(
      `WITH disabled AS (
         UPDATE workloads SET enabled = false, revision = revision + 1, updated_at = now() WHERE id = $1
         RETURNING id, jwks, enabled, revision, created_at, updated_at
       ), event AS (
         INSERT INTO revocation_events (type, workload_id, reason) SELECT 'workload.revoked', id, 'workload_revoked' FROM disabled
       )
       SELECT * FROM disabled`,
      [id],
    );
    return rows[0] && toWorkload(rows[0]);
  }

  async list(sql: Sql = this.sql): Promise<Workload[]> {
    const { rows } = await sql.query<WorkloadRow>(
      'SELECT id, jwks, enabled, revision, created_at, updated_at FROM workloads ORDER BY id LIMIT 1000',
    );
    return rows.map(toWorkload);
  }
}

interface WorkloadRow {
  id: string;
  jwks: { keys: JWK[] };
  enabled: boolean;
  revision: number;
  created_at: Date;
  updated_at: Date;
}

function toWorkload(row: WorkloadRow): Workload {
  return {
    id: row.id,
    jwks: row.jwks,
    enabled: row.enabled,
    revision: row.revision,
    createdAt: new Date(row.created_at),
    updatedAt: new Date(row.updated_at),
  };
}
