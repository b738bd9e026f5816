import { appendEvents } from '../audit/index.js';
import { appendAuditFrom, auditData } from '../audit/index.js';
import { conditions } from '../db/index.js';
import type { Sql } from '../db/index.js';
import { insertSelect } from '../db/index.js';
import { uuidv7 } from '../ids/index.js';
import { EFFECTIVE_STATE } from './effective-state.js';
import type { Lease, LeaseFilter, LeaseState, RevokeReason } from './lease.js';

const LEASE_COLUMNS = `l.id, l.task_id, l.workload_id, l.boundary_id, l.boundary_version, l.action, l.resource,
  l.credential_kind, ${EFFECTIVE_STATE} AS state, l.issued_at, l.expires_at, l.revoked_at, l.revoke_reason, l.params_digest`;

export interface LeaseRecord {
  id: string;
  credentialKind: string;
  /** Lives at a source: committed `issuing`, revoked through the outbox. */
  external?: boolean | undefined;
  issuedAt: number;
  expiresAt: number;
  /** The call's params digest (libs/audit paramsDigest), as the credential carries it. */
  paramsDigest?: string | undefined;
}

type LeaseColumn =
  | 'id'
  | 'task_id'
  | 'workload_id'
  | 'boundary_id'
  | 'boundary_version'
  | 'decision_id'
  | 'action'
  | 'resource'
  | 'credential_kind'
  | 'issued_at'
  | 'expires_at'
  | 'state'
  | 'external'
  | 'params_digest';

/**
 * The INSERT of a lease, as a CTE body: a lease is only ever written by the permit that decides it,
 * in the permit's own statement (DecisionLedger.recordPermit), so it commits with its decision.
 */
export function insertLeases(values: Record<LeaseColumn, string>, from: string): string {
  return insertSelect<LeaseColumn>('leases', values, from);
}

/**
 * Revokes, as a CTE body, the still-live leases `where` says (only leases held in Tollgate's own
 * table: the drift guard's revocation; revokeWhere handles credentials at a source too). Returns
 * what leaseEvents needs.
 */
export function revokeLive(reason: string, where: string): string {
  return `UPDATE leases SET state = 'revoked', revoked_at = now(), revoke_reason = ${reason}
          WHERE ${where} AND state = 'active' AND expires_at > now()
          RETURNING id, task_id, workload_id, boundary_id, boundary_version`;
}

/**
 * The events of the lease rows a CTE named `rows` returned (id, task_id, workload_id, boundary_id,
 * boundary_version), as `r`, optionally narrowed by `where`. The tool (token aud) rides along, so
 * a resource server's stream shows only its own leases.
 */
export function leaseEvents(type: string, reason: string, rows: string, where = ''): string {
  return appendEvents(
    { type, lease_id: 'r.id', task_id: 'r.task_id', workload_id: 'r.workload_id', reason, audience: 'b.tool' },
    `FROM ${rows} r LEFT JOIN boundaries b ON b.id = r.boundary_id AND b.version = r.boundary_version ${where}`,
  );
}

export function leaseRevokedEvents(reason: string, rows: string): string {
  return leaseEvents("'lease.revoked'", reason, rows);
}

/**
 * SQL for leases: issuance's last steps, revocation, expiry and review. A lease row is inserted by
 * its permit (insertLeases, in DecisionLedger.recordPermit); the outbox's steps are OutboxStore's.
 */
export class LeaseStore {
  constructor(private readonly sql: Sql) {}

  /**
   * The source answered for an `issuing` lease: record its handle, cut the lease to the source's own
   * expiry, audit a hash of the payload (never the payload), and make it `active`, in one statement.
   * Returns the lease's state and expiry: anything but `active` means the lease was revoked while
   * the source was being called (the outbox now revokes the credential by the handle recorded here),
   * and the credential must not be handed out.
   */
  async markIssued(
    id: string,
    issued: { externalHandle: string | null; sourceExpiresAt: number | null },
    audit: Record<string, unknown>,
  ): Promise<{ state: LeaseState; expiresAt: number } | undefined> {
    const { rows } = await this.sql.query<{ state: LeaseState; expires_ms: number | string }>(
      `WITH l AS (
         UPDATE leases SET external_handle = $2,
                expires_at = CASE WHEN $3::float8 IS NULL THEN expires_at
                                  ELSE greatest(least(expires_at, to_timestamp($3::float8 / 1000)), issued_at + interval '1 second') END,
                state = CASE WHEN state = 'issuing' THEN 'active' ELSE state END,
                revoke_next_at = CASE WHEN state = 'issuing' THEN revoke_next_at ELSE now() END
          WHERE id = $1
          RETURNING id, task_id, state, expires_at
       ), a AS (
         ${appendAuditFrom('credential.issued', { id: '$4::uuid', actor: "'system:issuance'", task_id: 'l.task_id', lease_id: 'l.id', data: '$5::jsonb' }, 'FROM l')}
       )
       SELECT state, (extract(epoch FROM expires_at) * 1000)::float8 AS expires_ms FROM l`,
      [id, issued.externalHandle, issued.sourceExpiresAt, uuidv7(), JSON.stringify(auditData(audit))],
      'tollgate_mark_issued',
    );
    const row = rows[0];
    return row && { state: row.state, expiresAt: Number(row.expires_ms) };
  }

  /**
   * The source refused an `issuing` lease's credential outright (unreachable, or an error answer):
   * nothing exists there, so the lease row goes and the audit log says why. The decision stays.
   */
  async dropUnissued(id: string, audit: Record<string, unknown>): Promise<boolean> {
    const { rows } = await this.sql.query<{ n: number }>(
      `WITH l AS (
         DELETE FROM leases WHERE id = $1 AND state = 'issuing' RETURNING id, task_id
       ), a AS (
         ${appendAuditFrom('credential.mint_failed', { id: '$2::uuid', actor: "'system:issuance'", task_id: 'l.task_id', lease_id: 'l.id', data: '$3::jsonb' }, 'FROM l')}
       )
       SELECT count(*)::int AS n FROM l`,
      [id, uuidv7(), JSON.stringify(auditData(audit))],
      'tollgate_drop_unissued',
    );
    return rows[0]!.n === 1;
  }

  async find(id: string, sql: Sql = this.sql): Promise<Lease | undefined> {
    const { rows } = await sql.query<LeaseRow>(`SELECT ${LEASE_COLUMNS} FROM leases l WHERE l.id = $1`, [id], 'tollgate_lease_find');
    return rows[0] && toLease(rows[0]);
  }

  /**
   * The leases with these ids, in one statement (ids it does not know are absent from the map):
   * the batch behind BatchedLeaseReads. `= ANY($1)` on the primary key is one index probe per id,
   * as `find` is; ids must be UUIDs (the caller checks, as introspection does with the jti).
   */
  async findMany(ids: readonly string[], sql: Sql = this.sql): Promise<Map<string, Lease>> {
    const { rows } = await sql.query<LeaseRow>(
      `SELECT ${LEASE_COLUMNS} FROM leases l WHERE l.id = ANY($1::uuid[])`,
      [ids],
      'tollgate_lease_find_many',
    );
    return new Map(rows.map((row) => [row.id, toLease(row)]));
  }

  async forTask(taskId: string, sql: Sql = this.sql): Promise<Lease[]> {
    const { rows } = await sql.query<LeaseRow>(`SELECT ${LEASE_COLUMNS} FROM leases l WHERE l.task_id = $1 ORDER BY l.id LIMIT 10000`, [
      taskId,
    ]);
    return rows.map(toLease);
  }

  /** A task's live leases (raw rows: what revokeWhere would revoke), counted. */
  async countLive(tx: Sql, taskId: string): Promise<number> {
    const { rows } = await tx.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM leases WHERE task_id = $1 AND ((state = 'active' AND expires_at > now()) OR state = 'issuing')`,
      [taskId],
    );
    return rows[0]!.n;
  }

  /** Revokes the still-live leases matching `where`, with a revocation event each; returns their ids. */
  async revokeWhere(tx: Sql, where: 'task' | 'workload' | 'boundary' | 'lease', id: string, reason: RevokeReason): Promise<string[]> {
    const column = { task: 'task_id', workload: 'workload_id', boundary: 'boundary_id', lease: 'id' }[where];
    const { rows } = await tx.query<{ id: string }>(
      `WITH revoked AS (
         -- A credential at a source waits in the outbox (revoking) until the source confirms.
         UPDATE leases SET state = CASE WHEN external THEN 'revoking' ELSE 'revoked' END, revoked_at = now(),
                revoke_reason = $2, revoke_next_at = CASE WHEN external THEN now() END
          WHERE ${column} = $1 AND ((state = 'active' AND expires_at > now()) OR state = 'issuing')
          RETURNING id, task_id, workload_id, boundary_id, boundary_version
       ), event AS (
         ${leaseRevokedEvents('$2', 'revoked')}
       )
       SELECT id FROM revoked`,
      [id, reason],
    );
    return rows.map((row) => row.id);
  }

  /**
   * Hands up to `limit` past-expiry leases that hold a credential at a source (`external`: Vault,
   * STS) to the outbox (`revoking`, reason lease_expired; the outbox marks them expired once the
   * source confirms), and records one audit event for the batch, in one statement. Other leases are
   * left as they are: they read `expired` by the clock (EFFECTIVE_STATE), and rewriting every
   * expired row would cost a row version, its index entries and WAL per credential for nothing.
   * SKIP LOCKED lets replicas sweep side by side: each claims its own rows, none waits, nothing is
   * handed over twice. The audit event carries the count and the expiry range.
   */
  async expireDue(limit: number): Promise<number> {
    const { rows } = await this.sql.query<{ n: number }>(
      `WITH due AS (
         SELECT id FROM leases WHERE state = 'active' AND external AND expires_at <= now()
          ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED
       ), marked AS (
         -- = ANY(ARRAY(...)) makes the update find its rows by primary key; a join here was planned
         -- as a hash join over a scan of the whole table, once per batch.
         UPDATE leases l SET state = 'revoking', revoke_reason = 'lease_expired', revoke_next_at = now()
          WHERE l.id = ANY (ARRAY(SELECT id FROM due)) RETURNING l.expires_at
       ), audit AS (
         ${appendAuditFrom(
           'leases.expired',
           {
             id: '$2::uuid',
             actor: "'system:sweeper'",
             data: "jsonb_build_object('count', count(*), 'expired_from', min(expires_at), 'expired_through', max(expires_at))",
           },
           'FROM marked HAVING count(*) > 0',
         )}
         RETURNING data
       )
       SELECT coalesce((SELECT (data->>'count')::int FROM audit), 0) AS n`,
      [limit, uuidv7()],
      'tollgate_expire_due',
    );
    return rows[0]!.n;
  }

  async countByState(state: LeaseState): Promise<number> {
    const { rows } = await this.sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM leases WHERE state = $1`, [state]);
    return rows[0]!.n;
  }

  async list(filter: LeaseFilter): Promise<Lease[]> {
    const { where, params } = conditions([
      ['l.task_id = ?', filter.task],
      ['l.workload_id = ?', filter.workload],
      ['l.boundary_id = ?', filter.boundary],
      ['l.task_id IN (SELECT t.id FROM tasks t WHERE t.subject = ?)', filter.subject],
      ['EXISTS (SELECT 1 FROM boundaries b WHERE b.id = l.boundary_id AND b.version = l.boundary_version AND b.tool = ?)', filter.tool],
      ['l.action = ?', filter.action],
      [`${EFFECTIVE_STATE} = ?`, filter.state],
      ['l.issued_at >= ?', filter.since],
      ['l.issued_at < ?', filter.until],
      ['l.id < ?', filter.cursor],
    ]);
    params.push(filter.limit);
    const { rows } = await this.sql.query<LeaseRow>(
      `SELECT ${LEASE_COLUMNS} FROM leases l ${where}
        ORDER BY l.id DESC LIMIT $${params.length}`,
      params,
    );
    return rows.map(toLease);
  }

  /**
   * The latest expiry of the leases issued between two times (for a retired signing key: when the
   * last token it can have signed expires). Lease ids are UUIDv7 of their issue time, so this reads
   * one primary-key range, not the table.
   */
  async latestExpiry(issuedFrom: number, issuedTo: number): Promise<number | undefined> {
    const { rows } = await this.sql.query<{ ms: number | string | null }>(
      `SELECT (extract(epoch FROM max(expires_at)) * 1000)::float8 AS ms FROM leases WHERE id >= $1::uuid AND id <= $2::uuid`,
      [uuidBound(issuedFrom, '0'), uuidBound(issuedTo, 'f')],
    );
    const ms = rows[0]?.ms;
    return ms === null || ms === undefined ? undefined : Number(ms);
  }

  async countActive(): Promise<number> {
    const { rows } = await this.sql.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM leases WHERE state = 'active' AND expires_at > now()`,
    );
    return rows[0]!.n;
  }
}

/** The smallest ('0') or largest ('f') UUIDv7 of a millisecond: the bounds of a time range of ids. */
function uuidBound(ms: number, fill: '0' | 'f'): string {
  const hex = Math.max(0, Math.floor(ms)).toString(16).padStart(12, '0').slice(-12);
  const rest = fill.repeat(20);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${rest.slice(0, 4)}-${rest.slice(4, 8)}-${rest.slice(8)}`;
}

interface LeaseRow {
  id: string;
  task_id: string;
  workload_id: string;
  boundary_id: string;
  boundary_version: number;
  action: string;
  resource: string | null;
  credential_kind: string;
  state: LeaseState;
  issued_at: Date;
  expires_at: Date;
  revoked_at: Date | null;
  revoke_reason: string | null;
  params_digest: string | null;
}

function toLease(row: LeaseRow): Lease {
  return {
    id: row.id,
    taskId: row.task_id,
    workloadId: row.workload_id,
    boundaryId: row.boundary_id,
    boundaryVersion: row.boundary_version,
    action: row.action,
    resource: row.resource,
    credentialKind: row.credential_kind,
    state: row.state,
    issuedAt: new Date(row.issued_at),
    expiresAt: new Date(row.expires_at),
    revokedAt: row.revoked_at ? new Date(row.revoked_at) : null,
    revokeReason: row.revoke_reason,
    paramsDigest: row.params_digest ?? null,
  };
}
