import type { JWK } from 'jose';
import type { Sql } from '../db/index.js';
import { appendEvents } from '../audit/index.js';
import type { RateInterval, Workload, WorkloadRateLimit } from './workload.js';

const COLUMNS =
  'id, jwks, issuer_id, subject, enabled, rate_limit_requests, rate_limit_per, rate_limit_burst, revision, created_at, updated_at';

/** How a workload proves itself: its registered keys, or a trusted issuer's tokens for a subject. */
export type WorkloadCredentials = { jwks: { keys: JWK[] } } | { issuerId: string; subject: string };

/** SQL for workloads. */
export class WorkloadStore {
  constructor(private readonly sql: Sql) {}

  async find(id: string, sql: Sql = this.sql): Promise<Workload | undefined> {
    const { rows } = await sql.query<WorkloadRow>(`SELECT ${COLUMNS} FROM workloads WHERE id = $1`, [id], 'tollgate_workload_find');
    return rows[0] && toWorkload(rows[0]);
  }

  /** The workload bound to (issuer, subject); at most one, by the unique index. */
  async findBound(issuerId: string, subject: string, sql: Sql = this.sql): Promise<Workload | undefined> {
    const { rows } = await sql.query<WorkloadRow>(
      `SELECT ${COLUMNS} FROM workloads WHERE issuer_id = $1 AND subject = $2`,
      [issuerId, subject],
      'tollgate_workload_find_bound',
    );
    return rows[0] && toWorkload(rows[0]);
  }

  /**
   * Creates a workload or replaces how it authenticates and its rate limit. An existing workload keeps
   * its enabled state unless `enabled` says otherwise: re-applying the same configuration must not
   * undo a kill switch.
   */
  async put(
    id: string,
    credentials: WorkloadCredentials,
    enabled: boolean | undefined,
    rateLimit: WorkloadRateLimit | null,
    sql: Sql = this.sql,
  ): Promise<{ workload: Workload; created: boolean }> {
    const jwks = 'jwks' in credentials ? JSON.stringify(credentials.jwks) : null;
    const issuerId = 'issuerId' in credentials ? credentials.issuerId : null;
    const subject = 'subject' in credentials ? credentials.subject : null;
    const { rows } = await sql.query<WorkloadRow & { created: boolean }>(
      `INSERT INTO workloads (id, jwks, issuer_id, subject, enabled, rate_limit_requests, rate_limit_per, rate_limit_burst)
       VALUES ($1, $2, $3, $4, coalesce($5::boolean, true), $6, $7, $8)
       ON CONFLICT (id) DO UPDATE SET jwks = EXCLUDED.jwks, issuer_id = EXCLUDED.issuer_id, subject = EXCLUDED.subject,
         enabled = coalesce($5::boolean, workloads.enabled), rate_limit_requests = EXCLUDED.rate_limit_requests,
         rate_limit_per = EXCLUDED.rate_limit_per, rate_limit_burst = EXCLUDED.rate_limit_burst,
         revision = workloads.revision + 1, updated_at = now()
       RETURNING ${COLUMNS}, (xmax = 0) AS created`,
      [id, jwks, issuerId, subject, enabled ?? null, rateLimit?.requests ?? null, rateLimit?.per ?? null, rateLimit?.burst ?? null],
    );
    const row = rows[0]!;
    return { workload: toWorkload(row), created: row.created };
  }

  /** Disables a workload (the kill switch) and records the revocation event. */
  async disable(id: string, sql: Sql = this.sql): Promise<Workload | undefined> {
    const { rows } = await sql.query<WorkloadRow>(
      `WITH disabled AS (
         UPDATE workloads SET enabled = false, revision = revision + 1, updated_at = now() WHERE id = $1
         RETURNING ${COLUMNS}
       ), event AS (
         ${appendEvents({ type: "'workload.revoked'", workload_id: 'id', reason: "'workload_revoked'" }, 'FROM disabled')}
       )
       SELECT * FROM disabled`,
      [id],
    );
    return rows[0] && toWorkload(rows[0]);
  }

  /** Ids of the enabled workloads bound to an issuer, locked so none changes while trust is withdrawn. */
  async lockBoundTo(issuerId: string, sql: Sql): Promise<string[]> {
    const { rows } = await sql.query<{ id: string }>('SELECT id FROM workloads WHERE issuer_id = $1 AND enabled ORDER BY id FOR UPDATE', [
      issuerId,
    ]);
    return rows.map((row) => row.id);
  }

  /** Every workload bound to an issuer, with its subject, locked against a concurrent change. */
  async boundTo(issuerId: string, sql: Sql): Promise<Array<{ id: string; subject: string }>> {
    const { rows } = await sql.query<{ id: string; subject: string }>(
      'SELECT id, subject FROM workloads WHERE issuer_id = $1 ORDER BY id FOR SHARE',
      [issuerId],
    );
    return rows;
  }

  async list(sql: Sql = this.sql): Promise<Workload[]> {
    const { rows } = await sql.query<WorkloadRow>(`SELECT ${COLUMNS} FROM workloads ORDER BY id LIMIT 1000`);
    return rows.map(toWorkload);
  }
}

interface WorkloadRow {
  id: string;
  jwks: { keys: JWK[] } | null;
  issuer_id: string | null;
  subject: string | null;
  enabled: boolean;
  rate_limit_requests: number | null;
  rate_limit_per: RateInterval | null;
  rate_limit_burst: number | null;
  revision: number;
  created_at: Date;
  updated_at: Date;
}

function toWorkload(row: WorkloadRow): Workload {
  return {
    id: row.id,
    jwks: row.jwks,
    issuerId: row.issuer_id,
    subject: row.subject,
    enabled: row.enabled,
    // All three or none, by the table's check constraint.
    rateLimit:
      row.rate_limit_requests === null || row.rate_limit_per === null || row.rate_limit_burst === null
        ? null
        : { requests: row.rate_limit_requests, per: row.rate_limit_per, burst: row.rate_limit_burst },
    revision: row.revision,
    createdAt: new Date(row.created_at),
    updatedAt: new Date(row.updated_at),
  };
}
