import { appendEvents } from '../audit/index.js';
import { appendAuditFrom, auditData } from '../audit/index.js';
import type { PendingDecision } from '../approvals/index.js';
import { insertApprovals, useApproval, type NewApproval } from '../approvals/index.js';
import type { Sql } from '../db/index.js';
import { uuidv7 } from '../ids/index.js';
import { StatementCoalescer, DEFAULT_COALESCING, type CoalescerOptions } from './statement-coalescer.js';
import {
  decisionParams,
  denialRow,
  DENIAL_ROW_COLUMNS,
  permitRow,
  PERMIT_ROW_COLUMNS,
  type DecisionRecord,
  type DenialInput,
  type PermitInput,
} from './ledger-rows.js';
import { ACTIVE_POLICIES_KEY } from '../policy/index.js';
import { listDecisions, type DecisionFilter } from './decision-list.js';
import { countDriftDenial, countDriftDenials, driftDenialIds, insertDriftDenials, insertTaskEvents } from '../tasks/index.js';
import type { Decision } from './lease.js';
import { insertLeases, leaseRevokedEvents, revokeLive, type LeaseRecord } from './lease-store.js';

/** A permit's or a denial's decision row: see ledger-rows.ts. */
export type { DecisionRecord } from './ledger-rows.js';

export interface DenialWritten {
  written: boolean;
  /** This denial reached the drift threshold: the task is now revoked (drift_detected). */
  suspended: boolean;
}

/** The lease a permit writes, from the decision row it follows (`d`): see recordPermit's parameters. */
const PERMIT_LEASE = insertLeases(
  {
    id: '$12::uuid',
    task_id: '$2::uuid',
    workload_id: '$3::text',
    boundary_id: '$4::text',
    boundary_version: '$5::int',
    decision_id: 'd.id',
    action: '$6::text',
    resource: '$7::text',
    credential_kind: '$13::text',
    issued_at: 'to_timestamp($11::float8 / 1000)',
    expires_at: 'to_timestamp($14::float8 / 1000)',
    state: "CASE WHEN $24::boolean THEN 'issuing' ELSE 'active' END",
    external: '$24::boolean',
    params_digest: '$25::text',
  },
  'FROM d',
);

/** The leases of writePermits' rows (`ok`), each after its decision row (`d`). */
const PERMIT_LEASES = insertLeases(
  {
    id: 'ok.lease_id',
    task_id: 'ok.task_id',
    workload_id: 'ok.workload_id',
    boundary_id: 'ok.boundary_id',
    boundary_version: 'ok.boundary_version',
    decision_id: 'd.id',
    action: 'ok.action',
    resource: 'ok.resource',
    credential_kind: 'ok.credential_kind',
    issued_at: 'to_timestamp(ok.at / 1000)',
    expires_at: 'to_timestamp(ok.expires_at / 1000)',
    state: "CASE WHEN ok.external THEN 'issuing' ELSE 'active' END",
    external: 'ok.external',
    params_digest: 'ok.params_digest',
  },
  'FROM ok JOIN d ON d.id = ok.decision_id',
);

/** The approval a repeat of an approved request names ($23), used up only if the permit is written. */
const APPROVAL_USED = useApproval(
  {
    id: '$23::uuid',
    taskId: '$2::uuid',
    workloadId: '$3::text',
    boundaryId: '$4::text',
    action: '$6::text',
    intent: '$17',
    leaseId: '$12::uuid',
  },
  'EXISTS (SELECT 1 FROM t, b, p)',
);

/** A denial the drift guard counts ($23 its threshold, null when it does not count). */
const DRIFT_COUNTED = countDriftDenial({
  taskId: '$2::uuid',
  threshold: '$23::int',
  when: 'EXISTS (SELECT 1 FROM d)',
});
const SUSPENDED_TASK_EVENT = insertTaskEvents(
  { id: '$24::uuid', task_id: 'id', kind: "'revoked'", intent: 'NULL', reason: "'drift_detected'" },
  'FROM suspended',
);

/** The suspension's audit event: the denials that tripped it and the leases it revoked (`revoked`). */
const SUSPENSION_AUDIT = appendAuditFrom(
  'task.drift_suspended',
  {
    id: '$25::uuid',
    actor: "'system:drift_guard'",
    task_id: 'id',
    data: `jsonb_build_object('threshold', $23::int, 'decision_ids', to_jsonb(${driftDenialIds('suspended', '$1::uuid')}), 'tripped_by', $1::uuid,
                                   'revoked_leases', coalesce((SELECT jsonb_agg(r.id ORDER BY r.id) FROM revoked r), '[]'::jsonb))
                || jsonb_strip_nulls(jsonb_build_object('request_id', $14::jsonb -> 'request_id'))`,
  },
  'FROM suspended',
);

/** SUSPENDED_TASK_EVENT for writeDenials: each suspended task's event, with its denial's own id. */
const SUSPENDED_TASK_EVENTS = insertTaskEvents(
  { id: 'task_event_id', task_id: 'id', kind: "'revoked'", intent: 'NULL', reason: "'drift_detected'" },
  'FROM suspended',
);

/** SUSPENSION_AUDIT for writeDenials: per suspended task, the leases revoked of that task. */
const SUSPENSION_AUDITS = appendAuditFrom(
  'task.drift_suspended',
  {
    id: 's.suspension_id',
    actor: "'system:drift_guard'",
    task_id: 's.id',
    data: `jsonb_build_object('threshold', s.drift_threshold, 'decision_ids', to_jsonb(${driftDenialIds('s', 's.decision_id')}), 'tripped_by', s.decision_id,
                                   'revoked_leases', coalesce((SELECT jsonb_agg(r.id ORDER BY r.id) FROM revoked r WHERE r.task_id = s.id), '[]'::jsonb))
                || jsonb_strip_nulls(jsonb_build_object('request_id', s.audit -> 'request_id'))`,
  },
  'FROM suspended s',
);

/** The approval a pending decision asks for (when `created`, $16), from the decision row `d`. */
const PENDING_APPROVAL = insertApprovals(
  {
    id: '$12::uuid',
    task_id: '$2::uuid',
    workload_id: '$3::text',
    boundary_id: '$4::text',
    boundary_version: '$5::int',
    action: '$6::text',
    resource: '$7::text',
    params: '$8::jsonb',
    params_hash: '$13::text',
    purpose: '$9::text',
    intent: '$14::text',
    status: "'pending'",
    decision_id: 'd.id',
    requested_at: 'to_timestamp($11::float8 / 1000)',
    expires_at: 'to_timestamp($15::float8 / 1000)',
    ttl: '$19::int',
  },
  'FROM d WHERE $16::boolean',
);

/**
 * The decisions table's only writer: every credential request leaves its row here, permitted,
 * denied or pending, in the same statement as what it decided (the lease, the approval, the
 * audit event), so a decision never commits without them, nor they without it.
 */
export class DecisionLedger {
  private readonly permits: StatementCoalescer<PermitInput, boolean>;
  private readonly denials: StatementCoalescer<DenialInput, DenialWritten>;

  /**
   * `coalescing` (default: on, DEFAULT_COALESCING) lets concurrent permits share one statement;
   * false writes each permit in a statement of its own.
   */
  constructor(
    private readonly sql: Sql,
    coalescing: CoalescerOptions | false = DEFAULT_COALESCING,
  ) {
    this.permits = new StatementCoalescer(
      { many: (inputs) => this.writePermits(inputs), one: (input) => this.writePermit(input) },
      coalescing === false ? { max: 1, lanes: Number.MAX_SAFE_INTEGER } : coalescing,
    );
    this.denials = new StatementCoalescer(
      { many: (inputs) => this.writeDenials(inputs), one: (input) => this.writeDenial(input) },
      coalescing === false ? { max: 1, lanes: Number.MAX_SAFE_INTEGER } : coalescing,
      // A task's drift denials are counted one statement at a time (see writeDenials).
      (input) => (input.driftThreshold === undefined ? undefined : (input.decision.taskId ?? undefined)),
    );
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
   *
   * Concurrent permits without an approval share their statement (StatementCoalescer, writePermits):
   * each row is checked on its own conditions and each caller learns whether its own rows were
   * written, after they committed.
   */
  recordPermit(
    decision: DecisionRecord,
    lease: LeaseRecord,
    intent: string,
    audit: Record<string, unknown>,
    policiesKey = '',
    approvalId?: string,
  ): Promise<boolean> {
    // The audit data takes the request id now, in the caller's own request scope: the statement
    // may be sent from another request's.
    const input: PermitInput = { decision, lease, intent, audit: auditData(audit), auditId: uuidv7(), policiesKey };
    return approvalId === undefined ? this.permits.submit(input) : this.writePermit(input, approvalId);
  }

  /** One permit in a statement of its own: see recordPermit. */
  private async writePermit(input: PermitInput, approvalId?: string): Promise<boolean> {
    const { decision, lease } = input;
    const { rows } = await this.sql.query<{ written: number }>(
      `WITH locked AS MATERIALIZED (
         -- By primary key alone, then checked on the row as locked (see writePermits).
         SELECT tasks.id, tasks.state, tasks.intent, tasks.expires_at FROM tasks JOIN workloads w ON w.id = tasks.workload_id AND w.enabled
          WHERE tasks.id = $2
          FOR SHARE OF tasks
       ), t AS (
         SELECT id FROM locked
          WHERE state = 'active' AND expires_at > now() AND intent = $17 AND expires_at >= to_timestamp($14::float8 / 1000)
       ), b AS (
         SELECT id FROM boundaries WHERE id = $4 AND version = $5 AND enabled AND superseded_at IS NULL FOR SHARE
       ), p AS (
         -- The global policies it was decided under are still the enabled ones.
         SELECT 1 WHERE ${ACTIVE_POLICIES_KEY} = $18::text
       ), ap AS (
         -- A repeat of an approved request uses the approval up, in this same statement.
         ${APPROVAL_USED}
       ), ok AS (
         SELECT t.id FROM t, b, p WHERE $23::uuid IS NULL OR EXISTS (SELECT 1 FROM ap)
       ), d AS (
         INSERT INTO decisions (id, task_id, workload_id, boundary_id, boundary_version, action, resource, outcome,
                                reasons, params, purpose, requested_ttl, at, policies, intent, subject, task_age_s, denials_in_task, approval_id)
         SELECT $1::uuid, t.id, $3::text, $4::text, $5::int, $6::text, $7::text, 'permit', '[]'::jsonb, $8::jsonb,
                $9::text, $10::int, to_timestamp($11::float8 / 1000), $19::jsonb, $17::text, $20::text, $21::int, $22::int, $23::uuid FROM ok t
         RETURNING id
       ), l AS (
         ${PERMIT_LEASE}
         RETURNING id
       ), a AS (
         ${appendAuditFrom('credential.permit', { id: '$15::uuid', actor: "'workload:' || $3::text", task_id: '$2::uuid', lease_id: 'l.id', data: '$16::jsonb' }, 'FROM l')}
         RETURNING id
       )
       SELECT count(*)::int AS written FROM a`,
      [
        ...decisionParams(decision),
        lease.id,
        lease.credentialKind,
        lease.expiresAt,
        input.auditId,
        JSON.stringify(input.audit),
        input.intent,
        input.policiesKey,
        decision.policies ? JSON.stringify(decision.policies) : null,
        decision.subject ?? null,
        decision.taskAgeS ?? null,
        decision.denialsInTask ?? null,
        approvalId ?? null,
        lease.external === true,
        lease.paramsDigest ?? null,
      ],
      'tollgate_record_permit',
    );
    return rows[0]!.written === 1;
  }

  /**
   * Many permits in one statement, each row under the same conditions as writePermit's, checked
   * row by row: a row whose task or boundary no longer stands writes nothing, the others commit.
   * The rows arrive as one jsonb array (cheaper than one array parameter per column: see
   * docs/performance.md). Row locks are taken in a fixed order (tasks by id, then boundaries by
   * id and version) and only FOR SHARE, so two batches never wait on each other in a cycle; the
   * writers that end several tasks at once (the kill switch) lock them in the same id order.
   * Answers, per input, whether its rows were written.
   */
  private async writePermits(inputs: readonly PermitInput[]): Promise<boolean[]> {
    const { rows } = await this.sql.query<{ lease_id: string }>(
      `WITH r AS (
         SELECT * FROM jsonb_to_recordset($1::jsonb) AS r(${PERMIT_ROW_COLUMNS})
       ), t AS MATERIALIZED (
         SELECT tasks.id, tasks.state, tasks.intent, tasks.expires_at FROM tasks JOIN workloads w ON w.id = tasks.workload_id AND w.enabled
          -- Found by primary key alone; state and expiry are checked in ok, on the rows as locked.
          -- Without statistics on tasks (a new database before autovacuum's first analyze) the
          -- planner took the active tasks' partial index whenever the WHERE implied its predicate,
          -- and walked every active task for each batch (as a semi-join, rescanning the batch's
          -- rows for each: two thirds of the statement's time with 200 tasks, EXPLAIN ANALYZE).
          WHERE tasks.id = ANY (ARRAY(SELECT task_id FROM r))
          ORDER BY tasks.id
          FOR SHARE OF tasks
       ), b AS MATERIALIZED (
         SELECT id, version FROM boundaries
          WHERE (id, version) IN (SELECT boundary_id, boundary_version FROM r) AND enabled AND superseded_at IS NULL
          ORDER BY id, version
          FOR SHARE
       ), ok AS MATERIALIZED (
         SELECT r.* FROM r
           JOIN t ON t.id = r.task_id AND t.state = 'active' AND t.expires_at > now()
                 AND t.intent = r.intent AND t.expires_at >= to_timestamp(r.expires_at / 1000)
           JOIN b ON b.id = r.boundary_id AND b.version = r.boundary_version
          -- The global policies each was decided under are still the enabled ones.
          WHERE r.policies_key = ${ACTIVE_POLICIES_KEY}
       ), d AS (
         INSERT INTO decisions (id, task_id, workload_id, boundary_id, boundary_version, action, resource, outcome,
                                reasons, params, purpose, requested_ttl, at, policies, intent, subject, task_age_s, denials_in_task, approval_id)
         SELECT decision_id, task_id, workload_id, boundary_id, boundary_version, action, resource, 'permit', '[]'::jsonb,
                coalesce(params, 'null'::jsonb), purpose, requested_ttl, to_timestamp(at / 1000), policies, intent, subject,
                task_age_s, denials_in_task, NULL FROM ok
         RETURNING id
       ), l AS (
         ${PERMIT_LEASES}
         RETURNING id
       ), a AS (
         ${appendAuditFrom('credential.permit', { id: 'ok.audit_id', actor: "'workload:' || ok.workload_id", task_id: 'ok.task_id', lease_id: 'l.id', data: 'ok.audit' }, 'FROM ok JOIN l ON l.id = ok.lease_id')}
         RETURNING lease_id
       )
       SELECT lease_id FROM a`,
      [JSON.stringify(inputs.map(permitRow))],
      'tollgate_record_permits',
    );
    const written = new Set(rows.map((row) => row.lease_id));
    return inputs.map((input) => written.has(input.lease.id));
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
  recordDenial(
    decision: DecisionRecord,
    decidedOn?: { intent: string; policiesKey?: string },
    driftThreshold?: number,
  ): Promise<DenialWritten> {
    const input: DenialInput = {
      decision,
      decidedOn,
      driftThreshold,
      auditId: uuidv7(),
      // In the caller's own request scope (see recordPermit).
      audit: auditData({
        decision_id: decision.id,
        boundary: decision.boundaryId,
        action: decision.action,
        reasons: decision.reasons,
        ...(decision.policies ? { policies: decision.policies } : {}),
      }),
      taskEventId: uuidv7(),
      suspensionId: uuidv7(),
    };
    return this.denials.submit(input);
  }

  /** One denial in a statement of its own: see recordDenial. */
  private async writeDenial(input: DenialInput): Promise<DenialWritten> {
    const { decision, decidedOn } = input;
    const { rows } = await this.sql.query<{ written: number; suspended: number }>(
      `WITH t AS MATERIALIZED (
         -- By primary key alone, then checked (see writeDenials).
         SELECT state, expires_at, intent FROM tasks WHERE id = $2::uuid
       ), still AS (
         SELECT 1 FROM t
           JOIN boundaries b ON b.id = $4::text AND b.version = $5::int AND b.superseded_at IS NULL
          WHERE t.state = 'active' AND t.expires_at > now() AND t.intent = $16::text
            AND ($17::text IS NULL OR ${ACTIVE_POLICIES_KEY} = $17::text)
       ), d AS (
         INSERT INTO decisions (id, task_id, workload_id, boundary_id, boundary_version, action, resource, outcome,
                                reasons, params, purpose, requested_ttl, at, policies, intent, subject, task_age_s, denials_in_task)
         SELECT $1::uuid, $2::uuid, $3::text, $4::text, $5::int, $6::text, $7::text, 'deny', $12::jsonb, $8::jsonb,
                $9::text, $10::int, to_timestamp($11::float8 / 1000), $18::jsonb, $19::text, $20::text, $21::int, $22::int
          WHERE NOT $15::boolean OR EXISTS (SELECT 1 FROM still)
         RETURNING id
       ), a AS (
         ${appendAuditFrom('credential.deny', { id: '$13::uuid', actor: "'workload:' || $3::text", task_id: '$2::uuid', data: '$14::jsonb' }, 'FROM d')}
         RETURNING id
       ), counted AS (
         ${DRIFT_COUNTED}
       ), counted_denial AS (
         ${insertDriftDenials('$1::uuid', 'FROM counted')}
       ), suspended AS (
         SELECT * FROM counted WHERE state = 'revoked'
       ), ended_event AS (
         ${appendEvents({ type: "'task.ended'", task_id: 'id', workload_id: 'workload_id', reason: "'drift_detected'" }, 'FROM suspended')}
       ), task_event AS (
         ${SUSPENDED_TASK_EVENT}
       ), revoked AS (
         ${revokeLive("'drift_detected'", 'task_id IN (SELECT id FROM suspended)')}
       ), lease_events AS (
         ${leaseRevokedEvents("'drift_detected'", 'revoked')}
       ), suspension_audit AS (
         ${SUSPENSION_AUDIT}
         RETURNING id
       )
       SELECT (SELECT count(*)::int FROM a) AS written, (SELECT count(*)::int FROM suspension_audit) AS suspended`,
      [
        ...decisionParams(decision),
        JSON.stringify(decision.reasons),
        input.auditId,
        JSON.stringify(input.audit),
        decidedOn !== undefined,
        decidedOn?.intent ?? null,
        decidedOn?.policiesKey ?? null,
        decision.policies ? JSON.stringify(decision.policies) : null,
        decision.intent ?? null,
        decision.subject ?? null,
        decision.taskAgeS ?? null,
        decision.denialsInTask ?? null,
        input.driftThreshold ?? null,
        input.taskEventId,
        input.suspensionId,
      ],
      'tollgate_record_denial',
    );
    return { written: rows[0]!.written === 1, suspended: rows[0]!.suspended === 1 };
  }

  /**
   * Many denials in one statement, each row under writeDenial's conditions, checked row by row.
   * The drift counting is writeDenial's too, for the counted rows at once: their tasks are locked
   * first, in id order (as writePermits does), and no two of them are of one task (the coalescer
   * keeps a second counted denial of a task for the next statement), so each task row is counted
   * once per statement, exactly as one statement per denial would.
   */
  private async writeDenials(inputs: readonly DenialInput[]): Promise<DenialWritten[]> {
    const { rows } = await this.sql.query<{ what: 'written' | 'suspended'; id: string }>(
      `WITH r AS (
         SELECT * FROM jsonb_to_recordset($1::jsonb) AS r(${DENIAL_ROW_COLUMNS})
       ), t AS MATERIALIZED (
         -- The tasks of the denials decided from remembered rows, by primary key alone, checked in
         -- still: a WHERE that implied the active tasks' partial index let the planner, without
         -- statistics on tasks, walk every active task for each such denial (EXPLAIN ANALYZE: 344
         -- index rows per denial, 3,483 buffers for a batch of 12, with 400 tasks), as writePermits.
         SELECT tasks.id, tasks.state, tasks.intent, tasks.expires_at FROM tasks
          WHERE tasks.id = ANY (ARRAY(SELECT task_id FROM r WHERE decided_on))
       ), still AS MATERIALIZED (
         SELECT r.decision_id FROM r
           JOIN t ON t.id = r.task_id
           JOIN boundaries b ON b.id = r.boundary_id AND b.version = r.boundary_version AND b.superseded_at IS NULL
          WHERE r.decided_on AND t.state = 'active' AND t.expires_at > now() AND t.intent = r.decided_intent
            AND (r.decided_policies_key IS NULL OR ${ACTIVE_POLICIES_KEY} = r.decided_policies_key)
       ), ok AS MATERIALIZED (
         SELECT r.* FROM r WHERE NOT r.decided_on OR r.decision_id IN (SELECT decision_id FROM still)
       ), d AS (
         INSERT INTO decisions (id, task_id, workload_id, boundary_id, boundary_version, action, resource, outcome,
                                reasons, params, purpose, requested_ttl, at, policies, intent, subject, task_age_s, denials_in_task)
         SELECT decision_id, task_id, workload_id, boundary_id, boundary_version, action, resource, 'deny', reasons,
                coalesce(params, 'null'::jsonb), purpose, requested_ttl, to_timestamp(at / 1000), policies, intent, subject,
                task_age_s, denials_in_task FROM ok
         RETURNING id
       ), a AS (
         ${appendAuditFrom('credential.deny', { id: 'ok.audit_id', actor: "'workload:' || ok.workload_id", task_id: 'ok.task_id', data: 'ok.audit' }, 'FROM ok JOIN d ON d.id = ok.decision_id')}
         RETURNING id
       ), drifting AS MATERIALIZED (
         -- Every task a counted denial updates is locked here, in id order, before the update; by
         -- primary key alone, state and expiry checked on the rows as locked (countDriftDenials).
         SELECT tasks.id, tasks.state, tasks.expires_at FROM tasks
          WHERE tasks.id = ANY (ARRAY(SELECT task_id FROM ok WHERE drift_threshold IS NOT NULL))
          ORDER BY tasks.id
          FOR NO KEY UPDATE
       ), counted AS (
         ${countDriftDenials({
           from: `(SELECT ok.* FROM drifting JOIN ok ON ok.task_id = drifting.id JOIN d ON d.id = ok.decision_id
                    WHERE drifting.state = 'active' AND drifting.expires_at > now()) c`,
           also: 'c.decision_id, c.drift_threshold, c.task_event_id, c.suspension_id, c.audit',
           ids: 'ARRAY(SELECT id FROM drifting)',
         })}
       ), counted_denials AS (
         ${insertDriftDenials('decision_id', 'FROM counted')}
       ), suspended AS (
         SELECT * FROM counted WHERE state = 'revoked'
       ), ended_event AS (
         ${appendEvents({ type: "'task.ended'", task_id: 'id', workload_id: 'workload_id', reason: "'drift_detected'" }, 'FROM suspended')}
       ), task_event AS (
         ${SUSPENDED_TASK_EVENTS}
       ), revoked AS (
         ${revokeLive("'drift_detected'", 'task_id IN (SELECT id FROM suspended)')}
       ), lease_events AS (
         ${leaseRevokedEvents("'drift_detected'", 'revoked')}
       ), suspension_audit AS (
         ${SUSPENSION_AUDITS}
         RETURNING id
       )
       SELECT 'written' AS what, id::text AS id FROM a
       UNION ALL SELECT 'suspended', id::text FROM suspension_audit`,
      [JSON.stringify(inputs.map(denialRow))],
      'tollgate_record_denials',
    );
    const written = new Set(rows.filter((row) => row.what === 'written').map((row) => row.id));
    const suspended = new Set(rows.filter((row) => row.what === 'suspended').map((row) => row.id));
    return inputs.map((input) => ({ written: written.has(input.auditId), suspended: suspended.has(input.suspensionId) }));
  }

  /**
   * A pending decision and its audit event, in one statement; with `created`, also the new
   * approval row it asks for and its approval.requested event (GET /v1/events). Without it the
   * request repeats an approval that is still pending, and reviewers have heard of it already.
   */
  async recordPending(decision: PendingDecision, approvalId: string, created: NewApproval | undefined): Promise<void> {
    await this.sql.query(
      `WITH d AS (
         INSERT INTO decisions (id, task_id, workload_id, boundary_id, boundary_version, action, resource, outcome,
                                reasons, params, purpose, requested_ttl, at)
         VALUES ($1::uuid, $2::uuid, $3::text, $4::text, $5::int, $6::text, $7::text, 'pending', '["approval_required"]'::jsonb,
                 $8::jsonb, $9::text, $10::int, to_timestamp($11::float8 / 1000))
         RETURNING id
       ), ap AS (
         ${PENDING_APPROVAL}
         RETURNING id, task_id, workload_id, boundary_id
       ), requested AS (
         ${appendEvents(
           {
             type: "'approval.requested'",
             approval_id: 'id',
             task_id: 'task_id',
             workload_id: 'workload_id',
             boundary_id: 'boundary_id',
             reason: "'approval_required'",
           },
           'FROM ap',
         )}
       )
       ${appendAuditFrom('credential.pending', { id: '$17::uuid', actor: "'workload:' || $3::text", task_id: '$2::uuid', data: '$18::jsonb' }, 'FROM d')}`,
      [
        ...decisionParams(decision),
        approvalId,
        created?.paramsHash ?? '',
        created?.intent ?? '',
        created?.expiresAt ?? 0,
        created !== undefined,
        uuidv7(),
        JSON.stringify(
          auditData({
            decision_id: decision.id,
            approval_id: approvalId,
            approval_created: created !== undefined,
            boundary: decision.boundaryId,
            boundary_version: decision.boundaryVersion,
            action: decision.action,
            resource: decision.resource,
            reasons: ['approval_required'],
            ...(decision.policies ? { policies: decision.policies } : {}),
          }),
        ),
        created?.ttl ?? null,
      ],
      'tollgate_record_pending',
    );
  }

  /** Decisions for review, newest first, each with its drift mark and its lease's state now. */
  listDecisions(filter: DecisionFilter): Promise<Decision[]> {
    return listDecisions(this.sql, filter);
  }
}
