import type { Sql } from '../db/database.js';
import { uuidv7 } from '../ids/ids.js';
import { auditData } from '../audit/audit.js';
import { toBoundary, type BoundaryRow } from '../policy/boundary-store.js';
import type { PolicyRef } from '../policy/cedar.js';
import { ACTIVE_POLICIES_KEY } from '../policy/policy-store.js';
import type { ToolBoundary } from '../policy/boundary.js';
import type { Decision, Lease, LeaseState, RevokeReason } from './lease.js';

/** The lease's state as of the database clock: expiry needs no sweeper to take effect. */
const EFFECTIVE_STATE = `CASE WHEN l.state = 'active' AND l.expires_at <= now() THEN 'expired' ELSE l.state END`;
const LEASE_COLUMNS = `l.id, l.task_id, l.workload_id, l.boundary_id, l.boundary_version, l.action, l.resource,
  l.credential_kind, ${EFFECTIVE_STATE} AS state, l.issued_at, l.expires_at, l.revoked_at, l.revoke_reason`;

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

export interface DecisionRecord {
  id: string;
  taskId: string | null;
  workloadId: string;
  boundaryId: string | null;
  boundaryVersion: number | null;
  action: string;
  resource: string | null;
  outcome: 'permit' | 'deny';
  reasons: readonly string[];
  params: unknown;
  purpose: string | null;
  requestedTtl: number | null;
  at: number;
  /** What a what-if replay needs of the task, as it was when decided (null without a task). */
  intent?: string | null;
  subject?: string | null;
  taskAgeS?: number | null;
  denialsInTask?: number | null;
  /** The Cedar policy sets that decided, when policies applied. */
  policies?: readonly PolicyRef[] | null;
}

export interface DenialWritten {
  written: boolean;
  /** This denial reached the drift threshold: the task is now revoked (drift_detected). */
  suspended: boolean;
}

export interface LeaseRecord {
  id: string;
  credentialKind: string;
  /** Lives at a source: committed `issuing`, revoked through the outbox. */
  external?: boolean | undefined;
  issuedAt: number;
  expiresAt: number;
}

export interface LeaseFilter {
  task?: string | undefined;
  workload?: string | undefined;
  boundary?: string | undefined;
  /** The task's end-user subject. */
  subject?: string | undefined;
  /** The boundary's tool (token audience), as of the boundary version decided under. */
  tool?: string | undefined;
  action?: string | undefined;
  state?: LeaseState | undefined;
  since?: Date | undefined;
  until?: Date | undefined;
  cursor?: string | undefined;
  limit: number;
}

export interface DecisionFilter extends Omit<LeaseFilter, 'state'> {
  outcome?: 'permit' | 'deny' | 'pending' | undefined;
}

/** SQL for decisions and leases: the credential hot path, revocation, expiry and review. */
export class LeaseStore {
  constructor(private readonly sql: Sql) {}

  /** One round trip: the database clock, the task, and the boundary's current version. */
  async requestContext(taskId: string, boundaryId: string): Promise<RequestContext> {
    const { rows } = await this.sql.query<ContextRow>(
      `SELECT (extract(epoch FROM now()) * 1000)::float8 AS now_ms,
              t.id AS task_id, t.workload_id, t.intent, t.subject, t.state AS task_state,
              (extract(epoch FROM t.expires_at) * 1000)::float8 AS task_expires_ms,
              (extract(epoch FROM t.created_at) * 1000)::float8 AS task_created_ms,
              b.id, b.version, b.tool, b.actions, b.intents, b.default_ttl, b.max_ttl, b.credential,
              b.sensitivity, b.drift_threshold, b.enabled, b.approval, b.policy, b.created_at, p.key AS policies_key,
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

  /**
   * The permit, in ONE statement and so one transaction: lock the task (still active, with the
   * intent it was decided under, not ending before the lease; its workload still enabled) and the
   * boundary version it was decided under (still current and enabled), then
   * write the decision, the lease and the audit event. A concurrent complete, intent change, kill
   * switch or boundary change either waits for this lease and revokes it, or makes this statement
   * write nothing: then it returns false and the request is decided again.
   * With `approvalId`, the same statement consumes that approval (approved, unexpired, for this
   * intent → used): of two concurrent repeats one waits on the row lock, finds it used, and writes
   * nothing, so an approval yields exactly one credential.
   */
  async recordPermit(decision: DecisionRecord, lease: LeaseRecord, intent: string, audit: Record<string, unknown>, policiesKey = '', approvalId?: string): Promise<boolean> {
    const { rows } = await this.sql.query<{ written: number }>(
      `WITH t AS (
         SELECT tasks.id FROM tasks JOIN workloads w ON w.id = tasks.workload_id AND w.enabled
          WHERE tasks.id = $2 AND tasks.state = 'active' AND tasks.expires_at > now()
            AND tasks.intent = $17 AND tasks.expires_at >= to_timestamp($14::float8 / 1000)
          FOR SHARE OF tasks
       ), b AS (
         SELECT id FROM boundaries WHERE id = $4 AND version = $5 AND enabled AND superseded_at IS NULL FOR SHARE
       ), p AS (
         -- The global policies it was decided under are still the enabled ones.
         SELECT 1 WHERE ${ACTIVE_POLICIES_KEY} = $18::text
       ), ap AS (
         -- A repeat of an approved request uses the approval up, in this same statement.
         UPDATE approvals SET status = 'used', used_at = now(), lease_id = $12::uuid
          WHERE id = $23::uuid AND task_id = $2::uuid AND workload_id = $3::text AND boundary_id = $4::text AND action = $6::text
            AND status = 'approved' AND expires_at > now() AND intent = $17
            AND EXISTS (SELECT 1 FROM t, b, p)
         RETURNING id
       ), ok AS (
         SELECT t.id FROM t, b, p WHERE $23::uuid IS NULL OR EXISTS (SELECT 1 FROM ap)
       ), d AS (
         INSERT INTO decisions (id, task_id, workload_id, boundary_id, boundary_version, action, resource, outcome,
                                reasons, params, purpose, requested_ttl, at, policies, intent, subject, task_age_s, denials_in_task, approval_id)
         SELECT $1::uuid, t.id, $3::text, $4::text, $5::int, $6::text, $7::text, 'permit', '[]'::jsonb, $8::jsonb,
                $9::text, $10::int, to_timestamp($11::float8 / 1000), $19::jsonb, $17::text, $20::text, $21::int, $22::int, $23::uuid FROM ok t
         RETURNING id
       ), l AS (
         INSERT INTO leases (id, task_id, workload_id, boundary_id, boundary_version, decision_id, action, resource,
                             credential_kind, issued_at, expires_at, state, external)
         SELECT $12::uuid, $2::uuid, $3::text, $4::text, $5::int, d.id, $6::text, $7::text, $13::text,
                to_timestamp($11::float8 / 1000), to_timestamp($14::float8 / 1000),
                CASE WHEN $24::boolean THEN 'issuing' ELSE 'active' END, $24::boolean FROM d
         RETURNING id
       ), a AS (
         INSERT INTO audit_events (id, kind, actor, task_id, lease_id, data)
         SELECT $15::uuid, 'credential.permit', 'workload:' || $3::text, $2::uuid, l.id, $16::jsonb FROM l
         RETURNING id
       )
       SELECT count(*)::int AS written FROM a`,
      [
        ...decisionParams(decision),
        lease.id,
        lease.credentialKind,
        lease.expiresAt,
        uuidv7(),
        JSON.stringify(auditData(audit)),
        intent,
        policiesKey,
        decision.policies ? JSON.stringify(decision.policies) : null,
        decision.subject ?? null,
        decision.taskAgeS ?? null,
        decision.denialsInTask ?? null,
        approvalId ?? null,
        lease.external === true,
      ],
      'tollgate_record_permit',
    );
    return rows[0]!.written === 1;
  }

  /**
   * A refusal: the decision and its audit event, in one statement. With `decidedOn` (a refusal
   * decided from remembered rows), it is written only if those rows still stand: the task active
   * with that intent, the boundary version current.
   *
   * With `driftThreshold` (a denial the drift guard counts), the same statement adds the decision to
   * the task's drift denials under the task's row lock, so concurrent denials count exactly; the
   * one that reaches the threshold ends the task (`revoked`, `drift_detected`) with its task.ended
   * event, task event, revokes its live leases (with their lease.revoked events) and writes a
   * `task.drift_suspended` audit event listing the denials and the leases. A permit waits for the
   * task's row lock and then finds the task ended. Only a lease whose permit committed while this
   * statement waited for that lock is invisible to it: the caller revokes the task's leases again
   * right after.
   */
  async recordDenial(decision: DecisionRecord, decidedOn?: { intent: string; policiesKey?: string }, driftThreshold?: number): Promise<DenialWritten> {
    const { rows } = await this.sql.query<{ written: number; suspended: number }>(
      `WITH still AS (
         SELECT 1 FROM tasks t
           JOIN boundaries b ON b.id = $4::text AND b.version = $5::int AND b.superseded_at IS NULL
          WHERE t.id = $2::uuid AND t.state = 'active' AND t.expires_at > now() AND t.intent = $16::text
            AND ($17::text IS NULL OR ${ACTIVE_POLICIES_KEY} = $17::text)
       ), d AS (
         INSERT INTO decisions (id, task_id, workload_id, boundary_id, boundary_version, action, resource, outcome,
                                reasons, params, purpose, requested_ttl, at, policies, intent, subject, task_age_s, denials_in_task)
         SELECT $1::uuid, $2::uuid, $3::text, $4::text, $5::int, $6::text, $7::text, 'deny', $12::jsonb, $8::jsonb,
                $9::text, $10::int, to_timestamp($11::float8 / 1000), $18::jsonb, $19::text, $20::text, $21::int, $22::int
          WHERE NOT $15::boolean OR EXISTS (SELECT 1 FROM still)
         RETURNING id
       ), a AS (
         INSERT INTO audit_events (id, kind, actor, task_id, data)
         SELECT $13::uuid, 'credential.deny', 'workload:' || $3::text, $2::uuid, $14::jsonb FROM d
         RETURNING id
       ), counted AS (
         UPDATE tasks
            SET drift_denials = array_append(drift_denials, $1::uuid),
                state = CASE WHEN cardinality(drift_denials) + 1 >= $23::int THEN 'revoked' ELSE state END,
                ended_at = CASE WHEN cardinality(drift_denials) + 1 >= $23::int THEN now() ELSE ended_at END,
                end_reason = CASE WHEN cardinality(drift_denials) + 1 >= $23::int THEN 'drift_detected' ELSE end_reason END
          WHERE id = $2::uuid AND $23::int IS NOT NULL AND state = 'active' AND expires_at > now() AND EXISTS (SELECT 1 FROM d)
         RETURNING id, workload_id, state, drift_denials
       ), suspended AS (
         SELECT * FROM counted WHERE state = 'revoked'
       ), ended_event AS (
         INSERT INTO revocation_events (type, task_id, workload_id, reason) SELECT 'task.ended', id, workload_id, 'drift_detected' FROM suspended
       ), task_event AS (
         INSERT INTO task_events (id, task_id, kind, intent, reason) SELECT $24::uuid, id, 'revoked', NULL, 'drift_detected' FROM suspended
       ), revoked AS (
         UPDATE leases SET state = 'revoked', revoked_at = now(), revoke_reason = 'drift_detected'
          WHERE task_id IN (SELECT id FROM suspended) AND state = 'active' AND expires_at > now()
          RETURNING id, task_id, workload_id, boundary_id, boundary_version
       ), lease_events AS (
         INSERT INTO revocation_events (type, lease_id, task_id, workload_id, reason, audience)
         SELECT 'lease.revoked', r.id, r.task_id, r.workload_id, 'drift_detected', b.tool
           FROM revoked r LEFT JOIN boundaries b ON b.id = r.boundary_id AND b.version = r.boundary_version
       ), suspension_audit AS (
         INSERT INTO audit_events (id, kind, actor, task_id, data)
         SELECT $25::uuid, 'task.drift_suspended', 'system:drift_guard', id,
                jsonb_build_object('threshold', $23::int, 'decision_ids', to_jsonb(drift_denials), 'tripped_by', $1::uuid,
                                   'revoked_leases', coalesce((SELECT jsonb_agg(r.id ORDER BY r.id) FROM revoked r), '[]'::jsonb))
                || jsonb_strip_nulls(jsonb_build_object('request_id', $14::jsonb -> 'request_id'))
           FROM suspended
         RETURNING id
       )
       SELECT (SELECT count(*)::int FROM a) AS written, (SELECT count(*)::int FROM suspension_audit) AS suspended`,
      [
        ...decisionParams(decision),
        JSON.stringify(decision.reasons),
        uuidv7(),
        JSON.stringify(
          auditData({
            decision_id: decision.id,
            boundary: decision.boundaryId,
            action: decision.action,
            reasons: decision.reasons,
            ...(decision.policies ? { policies: decision.policies } : {}),
          }),
        ),
        decidedOn !== undefined,
        decidedOn?.intent ?? null,
        decidedOn?.policiesKey ?? null,
        decision.policies ? JSON.stringify(decision.policies) : null,
        decision.intent ?? null,
        decision.subject ?? null,
        decision.taskAgeS ?? null,
        decision.denialsInTask ?? null,
        driftThreshold ?? null,
        uuidv7(),
        uuidv7(),
      ],
      'tollgate_record_denial',
    );
    return { written: rows[0]!.written === 1, suspended: rows[0]!.suspended === 1 };
  }

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
         INSERT INTO audit_events (id, kind, actor, task_id, lease_id, data)
         SELECT $4::uuid, 'credential.issued', 'system:issuance', l.task_id, l.id, $5::jsonb FROM l
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
         INSERT INTO audit_events (id, kind, actor, task_id, lease_id, data)
         SELECT $2::uuid, 'credential.mint_failed', 'system:issuance', l.task_id, l.id, $3::jsonb FROM l
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

  async forTask(taskId: string, sql: Sql = this.sql): Promise<Lease[]> {
    const { rows } = await sql.query<LeaseRow>(
      `SELECT ${LEASE_COLUMNS} FROM leases l WHERE l.task_id = $1 ORDER BY l.id LIMIT 10000`,
      [taskId],
    );
    return rows.map(toLease);
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
         -- The tool (token aud) rides along, so a resource server's stream shows only its own leases.
         INSERT INTO revocation_events (type, lease_id, task_id, workload_id, reason, audience)
         SELECT 'lease.revoked', r.id, r.task_id, r.workload_id, $2, b.tool
           FROM revoked r LEFT JOIN boundaries b ON b.id = r.boundary_id AND b.version = r.boundary_version
       )
       SELECT id FROM revoked`,
      [id, reason],
    );
    return rows.map((row) => row.id);
  }

  /**
   * Marks up to `limit` past-expiry leases `expired` and records one audit event for the batch, in
   * one statement. SKIP LOCKED lets replicas sweep side by side: each claims its own rows, none
   * waits, nothing is marked twice. The audit event carries the count and the expiry range: the
   * lease rows themselves say which leases expired.
   */
  async expireDue(limit: number): Promise<number> {
    const { rows } = await this.sql.query<{ n: number }>(
      `WITH due AS (
         SELECT id FROM leases WHERE state = 'active' AND expires_at <= now()
          ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED
       ), marked AS (
         -- = ANY(ARRAY(...)) makes the update find its rows by primary key; a join here was planned
         -- as a hash join over a scan of the whole table, once per batch.
         -- A credential at a source is told first (the outbox sets expired once it confirms).
         UPDATE leases l SET state = CASE WHEN l.external THEN 'revoking' ELSE 'expired' END,
                revoke_reason = CASE WHEN l.external THEN 'lease_expired' ELSE l.revoke_reason END,
                revoke_next_at = CASE WHEN l.external THEN now() END
          WHERE l.id = ANY (ARRAY(SELECT id FROM due)) RETURNING l.expires_at
       ), audit AS (
         INSERT INTO audit_events (id, kind, actor, data)
         SELECT $2::uuid, 'leases.expired', 'system:sweeper',
                jsonb_build_object('count', count(*), 'expired_from', min(expires_at), 'expired_through', max(expires_at))
           FROM marked HAVING count(*) > 0
         RETURNING data
       )
       SELECT coalesce((SELECT (data->>'count')::int FROM audit), 0) AS n`,
      [limit, uuidv7()],
      'tollgate_expire_due',
    );
    return rows[0]!.n;
  }

  /**
   * Claims up to `limit` leases whose source revocation is due (revoking, or revoke_failed on its
   * daily retry), in one statement: SKIP LOCKED lets replicas claim side by side without waiting or
   * doubling up, and pushing revoke_next_at out by `holdMs` keeps the claim after the transaction
   * ends, so the source is called outside it. A replica that dies holding a claim loses it when
   * the hold runs out; another replica then retries (source revocation is idempotent).
   */
  async claimRevocations(limit: number, holdMs: number): Promise<OutboxClaim[]> {
    const { rows } = await this.sql.query<ClaimRow>(
      `WITH due AS (
         SELECT id FROM leases WHERE state IN ('revoking', 'revoke_failed') AND revoke_next_at <= now()
          ORDER BY revoke_next_at LIMIT $1 FOR UPDATE SKIP LOCKED
       )
       UPDATE leases l SET revoke_next_at = now() + $2::float8 * interval '1 millisecond'
        WHERE l.id = ANY (ARRAY(SELECT id FROM due))
        RETURNING l.id, l.credential_kind, l.external_handle, l.revoke_attempts, l.state, l.revoke_reason,
                  (extract(epoch FROM now() - l.issued_at) * 1000)::float8 AS age_ms`,
      [limit, holdMs],
      'tollgate_outbox_claim',
    );
    return rows.map((row) => ({
      id: row.id,
      credentialKind: row.credential_kind,
      externalHandle: row.external_handle,
      attempts: row.revoke_attempts,
      state: row.state,
      reason: row.revoke_reason,
      ageMs: Number(row.age_ms),
    }));
  }

  /**
   * The source confirmed: `revoked` (or `expired`, when expiry sent it there), with an audit event, in
   * one statement. Only if the handle is still the one the claim revoked: a handle recorded since
   * (a late issuance answer) still needs its own call.
   */
  async confirmRevoked(claim: OutboxClaim, actor: string): Promise<boolean> {
    const { rows } = await this.sql.query<{ n: number }>(
      `WITH l AS (
         UPDATE leases SET state = CASE WHEN revoke_reason = 'lease_expired' THEN 'expired' ELSE 'revoked' END,
                revoke_next_at = NULL, revoke_error = NULL
          WHERE id = $1 AND state IN ('revoking', 'revoke_failed') AND external_handle IS NOT DISTINCT FROM $2
          RETURNING id, task_id, revoke_reason
       ), a AS (
         INSERT INTO audit_events (id, kind, actor, task_id, lease_id, data)
         SELECT $3::uuid, 'lease.revoked_at_source', $4::text, l.task_id, l.id,
                jsonb_build_object('kind', $5::text, 'reason', l.revoke_reason, 'attempts', $6::int, 'found', $2::text IS NOT NULL)
           FROM l
       )
       SELECT count(*)::int AS n FROM l`,
      [claim.id, claim.externalHandle, uuidv7(), actor, claim.credentialKind, claim.attempts + 1],
      'tollgate_outbox_confirm',
    );
    return rows[0]!.n === 1;
  }

  /**
   * The source did not confirm: try again after `retryMs`, or after `maxAttempts` give up to
   * `revoke_failed` (retried every `failedRetryMs`), with an audit event and a revocation event
   * the first time. `error` must name the failure only (a status or code), never a payload.
   */
  async failRevocation(
    claim: OutboxClaim,
    error: string,
    { retryMs, maxAttempts, failedRetryMs }: { retryMs: number; maxAttempts: number; failedRetryMs: number },
  ): Promise<LeaseState | undefined> {
    const { rows } = await this.sql.query<{ state: LeaseState; gave_up: boolean }>(
      `WITH l AS (
         UPDATE leases SET revoke_attempts = revoke_attempts + 1, revoke_error = $2,
                state = CASE WHEN revoke_attempts + 1 >= $3 THEN 'revoke_failed' ELSE state END,
                revoke_next_at = now() + (CASE WHEN revoke_attempts + 1 >= $3 THEN $4::float8 ELSE $5::float8 END) * interval '1 millisecond'
          WHERE id = $1 AND state IN ('revoking', 'revoke_failed')
          RETURNING id, task_id, workload_id, boundary_id, boundary_version, state, revoke_attempts,
                    (state = 'revoke_failed' AND revoke_attempts = $3) AS gave_up
       ), a AS (
         INSERT INTO audit_events (id, kind, actor, task_id, lease_id, data)
         SELECT $6::uuid, 'lease.revoke_failed', 'system:outbox', l.task_id, l.id,
                jsonb_build_object('kind', $7::text, 'attempts', l.revoke_attempts, 'error', $2::text)
           FROM l WHERE l.gave_up
       ), e AS (
         INSERT INTO revocation_events (type, lease_id, task_id, workload_id, reason, audience)
         SELECT 'lease.revoke_failed', l.id, l.task_id, l.workload_id, $2::text, b.tool
           FROM l LEFT JOIN boundaries b ON b.id = l.boundary_id AND b.version = l.boundary_version
          WHERE l.gave_up
       )
       SELECT state, gave_up FROM l`,
      [claim.id, error, maxAttempts, failedRetryMs, retryMs, uuidv7(), claim.credentialKind],
      'tollgate_outbox_fail',
    );
    return rows[0]?.state;
  }

  /** Puts a claim back without counting an attempt (an issuance that may still be answering). */
  async releaseClaim(id: string, afterMs: number): Promise<void> {
    await this.sql.query(
      `UPDATE leases SET revoke_next_at = now() + $2::float8 * interval '1 millisecond' WHERE id = $1 AND state IN ('revoking', 'revoke_failed')`,
      [id, afterMs],
    );
  }

  /**
   * Leases left `issuing` for longer than `olderThanMs` (their broker stopped between the source
   * call and the commit, or is hung on it): sent to the outbox, which revokes by what it can find.
   * One statement, with one audit event for the batch.
   */
  async abandonIssuing(olderThanMs: number, limit: number): Promise<string[]> {
    const { rows } = await this.sql.query<{ id: string }>(
      `WITH due AS (
         SELECT id FROM leases WHERE state = 'issuing' AND issued_at < now() - $1::float8 * interval '1 millisecond'
          ORDER BY issued_at LIMIT $2 FOR UPDATE SKIP LOCKED
       ), l AS (
         UPDATE leases SET state = 'revoking', revoked_at = now(), revoke_reason = 'issue_abandoned', revoke_next_at = now()
          WHERE id = ANY (ARRAY(SELECT id FROM due)) RETURNING id
       ), a AS (
         INSERT INTO audit_events (id, kind, actor, data)
         SELECT $3::uuid, 'leases.revoked', 'system:outbox',
                jsonb_build_object('reason', 'issue_abandoned', 'lease_ids', jsonb_agg(id)) FROM l HAVING count(*) > 0
       )
       SELECT id FROM l`,
      [olderThanMs, limit, uuidv7()],
      'tollgate_outbox_abandon_issuing',
    );
    return rows.map((row) => row.id);
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

  async listDecisions(filter: DecisionFilter): Promise<Decision[]> {
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
    const { rows } = await this.sql.query<DecisionRow>(
      `SELECT d.id, d.task_id, d.workload_id, d.boundary_id, d.boundary_version, d.action, d.resource, d.outcome, d.reasons, d.policies, d.at,
              CASE WHEN t.id IS NULL THEN NULL
                   WHEN t.end_reason = 'drift_detected' AND d.id = t.drift_denials[cardinality(t.drift_denials)] THEN 'suspended_task'
                   ELSE 'counted' END AS drift,
              l.id AS lease_id, l.state AS lease_state
         FROM decisions d LEFT JOIN tasks t ON t.id = d.task_id AND d.id = ANY (t.drift_denials)
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

/**
 * The filters that were given, as a WHERE clause of numbered conditions (`?` becomes the parameter's
 * place), or '' when none was given.
 */
export function conditions(filters: ReadonlyArray<readonly [string, unknown]>): { where: string; params: unknown[] } {
  const clauses: string[] = [];
  const params: unknown[] = [];
  for (const [clause, value] of filters) {
    if (value === undefined || value === '') continue;
    params.push(value);
    clauses.push(clause.replace('?', `$${params.length}`));
  }
  return { where: clauses.length ? `WHERE ${clauses.join(' AND ')}` : '', params };
}

/** A lease the outbox has claimed: what revoking it at its source needs. */
export interface OutboxClaim {
  id: string;
  credentialKind: string;
  externalHandle: string | null;
  /** Attempts before this one. */
  attempts: number;
  state: LeaseState;
  reason: string | null;
  /** Since the lease was committed, by the database clock. */
  ageMs: number;
}

interface ClaimRow {
  id: string;
  credential_kind: string;
  external_handle: string | null;
  revoke_attempts: number;
  state: LeaseState;
  revoke_reason: string | null;
  age_ms: number | string;
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
  };
}

/**
 * The first eleven parameters of every statement that writes a decision row ($1 to $11): id, task,
 * workload, boundary and version, action, resource, params, purpose, requested ttl, time.
 */
export function decisionParams(decision: DecisionRecord): unknown[] {
  return [
    decision.id,
    decision.taskId,
    decision.workloadId,
    decision.boundaryId,
    decision.boundaryVersion,
    decision.action,
    decision.resource,
    JSON.stringify(decision.params ?? null),
    decision.purpose,
    decision.requestedTtl,
    decision.at,
  ];
}
