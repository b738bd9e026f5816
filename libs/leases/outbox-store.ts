import { appendAuditFrom } from '../audit/index.js';
import { uuidv7 } from '../ids/index.js';
import type { Sql } from '../db/index.js';
import type { LeaseState } from './lease.js';
import { leaseEvents } from './lease-store.js';

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

/**
 * The revocation outbox's steps on lease rows (libs/leases/outbox.ts runs them): leases left
 * `issuing` sent there, due revocations claimed, then confirmed, failed or released. Its columns
 * are revoke_next_at, revoke_attempts and revoke_error; it moves a lease on from `revoking` /
 * `revoke_failed` only. Getting a lease into `revoking` is LeaseStore's (revokeWhere, expireDue).
 */
export class OutboxStore {
  constructor(private readonly sql: Sql) {}

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
         ${appendAuditFrom(
           'leases.revoked',
           {
             id: '$3::uuid',
             actor: "'system:outbox'",
             data: "jsonb_build_object('reason', 'issue_abandoned', 'lease_ids', jsonb_agg(id))",
           },
           'FROM l HAVING count(*) > 0',
         )}
       )
       SELECT id FROM l`,
      [olderThanMs, limit, uuidv7()],
      'tollgate_outbox_abandon_issuing',
    );
    return rows.map((row) => row.id);
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
         ${appendAuditFrom(
           'lease.revoked_at_source',
           {
             id: '$3::uuid',
             actor: '$4::text',
             task_id: 'l.task_id',
             lease_id: 'l.id',
             data: "jsonb_build_object('kind', $5::text, 'reason', l.revoke_reason, 'attempts', $6::int, 'found', $2::text IS NOT NULL)",
           },
           'FROM l',
         )}
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
         ${appendAuditFrom(
           'lease.revoke_failed',
           {
             id: '$6::uuid',
             actor: "'system:outbox'",
             task_id: 'l.task_id',
             lease_id: 'l.id',
             data: "jsonb_build_object('kind', $7::text, 'attempts', l.revoke_attempts, 'error', $2::text)",
           },
           'FROM l WHERE l.gave_up',
         )}
       ), e AS (
         ${leaseEvents("'lease.revoke_failed'", '$2::text', 'l', 'WHERE r.gave_up')}
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
}
