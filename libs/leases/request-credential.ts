import { createHash } from 'node:crypto';
import type { ApprovalGate, ApprovalRefusal } from '../approvals/index.js';
import { AccessDenied, ApprovalPending, NotFound, PolicyUnavailable, TemporarilyUnavailable } from '../errors/index.js';
import { uuidv7 } from '../ids/index.js';
import { canonicalParams } from '../audit/index.js';
import { findUnstorable, storable } from '../db/index.js';
import { SourceError, type CredentialProviders, type Issued, type IssuedCredential } from '../credentials/index.js';
import type { ToolBoundary } from '../policy/index.js';
import type { PolicyDenyReason, PolicyRef } from '../policy/index.js';
import { checkCredentialRequest, type DenyReason } from '../policy/index.js';
import type { Policies } from '../policy/index.js';
import type { DecisionLedger, DecisionRecord } from './decision-ledger.js';
import type { LeaseStore } from './lease-store.js';
import type { RequestContext, RequestContextReader } from './request-context.js';
import type { DriftGuard } from './drift-guard.js';
import type { RateLimiter } from './rate-limit.js';
import type { RequestContextCache } from './request-context-cache.js';
import type { LeaseRevocation } from './revocation.js';
import { annotate, inSpan, tracingOn } from '../tracing/index.js';
import { leaseTtl } from './ttl.js';

export interface CredentialRequest {
  taskId: string;
  boundary: string;
  action: string;
  resource?: string | undefined;
  params?: Record<string, unknown> | undefined;
  purpose?: string | undefined;
  ttl?: number | undefined;
  /** The tool the caller expects the credential for (RFC 8693 `audience`); checked against the boundary. */
  audience?: string | undefined;
  /** The key the caller proved it holds (a checked DPoP proof): the credential is bound to it. */
  confirmation?: { jkt: string } | undefined;
  /** Repeats a request a reviewer approved (or still pending): it must match the approved request exactly. */
  approvalId?: string | undefined;
}

export interface IssuedLease {
  leaseId: string;
  expiresAt: Date;
  expiresIn: number;
  credential: IssuedCredential;
}

/** What the hot path needs from storage: one read, one write; credentials at a source add the lease's last steps. */
export interface IssuanceStorage {
  context: Pick<RequestContextReader, 'requestContext'>;
  decisions: Pick<DecisionLedger, 'recordPermit' | 'recordDenial'>;
  leases: Pick<LeaseStore, 'markIssued' | 'dropUnissued'>;
}

/** All of IssuanceStorage in one: what a hand-written fake implements. */
export type IssuanceLedger = IssuanceStorage['context'] & IssuanceStorage['decisions'] & IssuanceStorage['leases'];

const ACTOR = 'system:issuance';

/** Told about every decision, for metrics. */
export type DecisionObserver = (
  outcome: 'permit' | 'deny' | 'pending',
  reason: DenyReason | PolicyDenyReason | ApprovalRefusal | 'unknown_task' | 'approval_required' | 'policy_unavailable' | null,
) => void;

/** The Cedar step of the hot path (libs/policy/policies.ts). */
export type PolicyDecider = Pick<Policies, 'decide'>;

export interface IssuanceOptions {
  storage: IssuanceStorage;
  providers: CredentialProviders;
  /** Undoes a committed lease whose credential could not be minted, audited like any revocation. */
  revocation: Pick<LeaseRevocation, 'revokeLease'>;
  observe?: DecisionObserver | undefined;
  cache?: RequestContextCache | undefined;
  approvals?: Pick<ApprovalGate, 'named' | 'ask'> | undefined;
  drift?: DriftGuard | undefined;
  rateLimit?: RateLimiter | undefined;
  policies?: PolicyDecider | undefined;
}

/**
 * The hot path: one credential for one tool call. Read it top to bottom: load the task, boundary
 * and database clock; run the checks; let Cedar decide when policies apply; cap the TTL; commit decision + lease + audit in one
 * statement; only then mint. No committed lease, no credential.
 */
export class CredentialIssuance {
  private readonly context: IssuanceStorage['context'];
  private readonly decisions: IssuanceStorage['decisions'];
  private readonly leases: IssuanceStorage['leases'];
  private readonly providers: CredentialProviders;
  private readonly revocation: IssuanceOptions['revocation'];
  private readonly observe: DecisionObserver;
  private readonly cache: RequestContextCache | undefined;
  private readonly approvals: IssuanceOptions['approvals'];
  private readonly guards: { drift?: DriftGuard | undefined; rateLimit?: RateLimiter | undefined };
  private readonly policies: PolicyDecider | undefined;

  constructor(options: IssuanceOptions) {
    this.context = options.storage.context;
    this.decisions = options.storage.decisions;
    this.leases = options.storage.leases;
    this.providers = options.providers;
    this.revocation = options.revocation;
    this.observe = options.observe ?? (() => {});
    this.cache = options.cache;
    this.approvals = options.approvals;
    this.guards = { drift: options.drift, rateLimit: options.rateLimit };
    this.policies = options.policies;
  }

  /**
   * Traced as one `tollgate.decision` span (the database and the signature below it), carrying the
   * id, outcome and reasons of the decision that answered; never params values or tokens.
   */
  request(workloadId: string, request: CredentialRequest): Promise<IssuedLease> {
    if (!tracingOn()) return this.decide(workloadId, request);
    const attributes = {
      'tollgate.workload.id': workloadId,
      'tollgate.task.id': request.taskId,
      'tollgate.boundary.id': request.boundary,
      'tollgate.action': request.action,
    };
    return inSpan('tollgate.decision', attributes, () => this.decide(workloadId, request));
  }

  private async decide(workloadId: string, request: CredentialRequest): Promise<IssuedLease> {
    // Before anything is read or written: a flood must not cost the database a row per request.
    await this.guards.rateLimit?.take(workloadId);
    // With the task and boundary remembered, a permit is one round trip; anything else (a denial,
    // or a permit the committing statement refuses) is decided again from fresh rows.
    const remembered = this.cache?.get(request.taskId, request.boundary);
    if (remembered) {
      const issued = await this.attempt(workloadId, request, remembered);
      if (issued) return issued;
      this.cache?.forgetTask(request.taskId);
      this.cache?.forgetBoundary(request.boundary);
    }
    // A permit that loses a race with a change to its task or boundary is decided again, once, on
    // fresh state; a second loss in a row is too rare to guess about: fail closed.
    for (let attempt = 0; attempt < 2; attempt++) {
      const issued = await this.attempt(workloadId, request);
      if (issued) return issued;
    }
    throw new TemporarilyUnavailable('the task or tool boundary is changing; try again');
  }

  private async attempt(workloadId: string, request: CredentialRequest, remembered?: RequestContext): Promise<IssuedLease | undefined> {
    const context = remembered ?? (await this.context.requestContext(request.taskId, request.boundary));
    if (!remembered) this.cache?.remember(context);
    const { now, task, boundary, policiesKey } = context;
    // Walked once: the check refuses such params, and the decision records them in storable form.
    const paramsProblem = request.params === undefined ? undefined : findUnstorable(request.params);
    const decision: DecisionRecord = {
      id: uuidv7(now),
      taskId: null,
      workloadId,
      boundaryId: request.boundary,
      boundaryVersion: boundary?.version ?? null,
      action: request.action,
      resource: request.resource ?? null,
      outcome: 'deny',
      reasons: [],
      // Recorded whatever they hold: what the database cannot keep is kept as escaped JSON text.
      params: request.params === undefined ? null : storable(request.params, paramsProblem),
      purpose: request.purpose ?? null,
      requestedTtl: request.ttl ?? null,
      at: now,
    };

    // Another workload's task is indistinguishable from a missing one.
    if (remembered && (!task || task.workloadId !== workloadId)) return undefined;
    if (!task || task.workloadId !== workloadId) {
      await this.decisions.recordDenial({ ...decision, reasons: ['unknown_task'] });
      this.observe('deny', 'unknown_task');
      traceDecision(decision.id, 'deny', ['unknown_task']);
      throw new NotFound('no such task');
    }
    decision.taskId = task.id;
    decision.intent = task.intent;
    decision.subject = task.subject;
    decision.taskAgeS = Math.max(0, Math.floor((now - task.createdAt) / 1000));
    decision.denialsInTask = task.denials;

    const active = task.state === 'active' && task.expiresAt > now;
    const verdict = checkCredentialRequest({
      task: { active, intent: task.intent },
      boundary,
      action: request.action,
      audience: request.audience,
      paramsUnstorable: paramsProblem !== undefined,
      params: request.params,
    });
    if (verdict.outcome === 'deny') {
      // A refusal decided from remembered rows is written only if those rows still stand.
      return this.deny(decision, verdict.reasons[0], verdict.description, remembered ? { intent: task.intent } : undefined, { boundary });
    }

    // A repeat's approval is settled first: whether the request is approved is part of what Cedar
    // sees (`context.approved`). Decided on fresh rows only: an approval hangs on the task's intent.
    let approvalId: string | undefined;
    let approvedTtl: number | undefined;
    const gateInput = { decision, task, boundary: boundary!, params: request.params, now };
    if (request.approvalId !== undefined) {
      if (remembered) return undefined;
      const named = await this.gate().named(gateInput, request.approvalId);
      if (named.outcome === 'deny') return this.deny(decision, named.reason, named.description);
      if (named.outcome === 'pending') return this.pending(named.approvalId, named.expiresAt, decision.id);
      approvalId = named.approvalId;
      approvedTtl = named.ttl;
    }

    // Cedar decides after the core checks, and only when a policy or an approval rule applies:
    // forbid wins, and with a boundary policy (or any permit) attached no permit is a deny.
    let policy: Awaited<ReturnType<PolicyDecider['decide']>>;
    try {
      policy = await this.policies?.decide(
        {
          workloadId,
          task: { intent: task.intent, subject: task.subject, ageSeconds: decision.taskAgeS, denials: task.denials },
          boundary: boundary!,
          action: request.action,
          resource: decision.resource,
          params: decision.params,
          purpose: decision.purpose,
          approved: approvalId !== undefined,
        },
        boundary!,
        policiesKey,
      );
    } catch (error) {
      if (!(error instanceof PolicyUnavailable)) throw error;
      // Cedar's process died or did not answer: fail closed, and record the refusal (it is not
      // the bot's doing, so the drift guard does not count it).
      await this.decisions.recordDenial(
        { ...decision, outcome: 'deny', reasons: ['policy_unavailable'] },
        { intent: task.intent },
        undefined,
      );
      this.observe('deny', 'policy_unavailable');
      throw error;
    }
    if (!policy && boundary!.approval) throw new TemporarilyUnavailable('approval rules are not available');
    if (policy) decision.policies = policy.determiningPolicies;
    if (policy?.decision === 'deny') {
      const reason = policy.reasons[0]!;
      const description = reason === 'policy_forbid' ? 'a policy forbids the request' : 'no policy permits the request';
      // Written only if the policies it was decided under are still the enabled ones.
      return this.deny(
        decision,
        reason,
        description,
        { intent: task.intent, policiesKey: policy.policiesKey },
        { boundary, policies: policy.determiningPolicies },
      );
    }

    const ttl = leaseTtl({
      requested: request.ttl,
      defaultTtl: boundary!.defaultTtl,
      maxTtl: boundary!.maxTtl,
      taskSecondsLeft: (task.expiresAt - now) / 1000,
      approvedTtl,
    });
    if (ttl === 0) return remembered ? undefined : this.deny(decision, 'task_not_active', 'the task has no time left');

    // Step-up: the boundary's approval rule or an `@approval("required")` permit sends the request
    // to a reviewer, unless it carries that reviewer's approval already.
    if (approvalId === undefined && policy?.approvalRequired) {
      if (remembered) return undefined;
      const asked = await this.gate().ask(gateInput, ttl);
      return this.pending(asked.approvalId, asked.expiresAt, decision.id);
    }

    const provider = this.providers.get(boundary!.credential.kind);
    // Serialized once: the lease keeps the digest, the provider reuses digest and size.
    const canonical = canonicalParams(request.params);
    const lease = {
      id: uuidv7(now),
      credentialKind: provider.kind,
      issuedAt: now,
      expiresAt: now + ttl * 1000,
      external: provider.external,
      // Kept on the lease so introspection answers with the digest the token carries.
      paramsDigest: canonical.digest,
    };
    const audit: Record<string, unknown> = {
      decision_id: decision.id,
      boundary: boundary!.id,
      boundary_version: boundary!.version,
      action: request.action,
      resource: decision.resource,
      ttl,
    };
    if (request.confirmation) audit.cnf_jkt = request.confirmation.jkt;
    if (approvalId) audit.approval_id = approvalId;
    if (decision.policies) audit.policies = decision.policies;
    const committed = await this.decisions.recordPermit(
      { ...decision, outcome: 'permit' },
      lease,
      task.intent,
      audit,
      policy?.policiesKey ?? policiesKey,
      approvalId,
    );
    if (!committed) return undefined;
    this.observe('permit', null);
    traceDecision(decision.id, 'permit', []);

    // A credential at a source is committed `issuing` first (the outbox's intent row): if this
    // process dies after the source call, the lease is there for the outbox to revoke.
    let issued: Issued;
    try {
      issued = await provider.issue({
        lease: { id: lease.id, issuedAt: lease.issuedAt, expiresAt: lease.expiresAt, action: request.action, resource: decision.resource },
        task: { id: task.id, intent: task.intent, subject: task.subject },
        workloadId,
        boundary: boundary!,
        settings: boundary!.credential,
        params: request.params,
        canonicalParams: canonical,
        confirmation: request.confirmation,
      });
    } catch (error) {
      await this.undoUnminted(lease.id, lease.credentialKind, error).catch(() => {});
      throw new TemporarilyUnavailable('the credential could not be minted; try again');
    }
    if (!lease.external) return { leaseId: lease.id, expiresAt: new Date(lease.expiresAt), expiresIn: ttl, credential: issued.credential };

    const marked = await this.leases.markIssued(
      lease.id,
      { externalHandle: issued.externalHandle ?? null, sourceExpiresAt: issued.sourceExpiresAt ?? null },
      { kind: lease.credentialKind, payload_sha256: payloadHash(issued.credential), handle_recorded: issued.externalHandle !== undefined },
    );
    // Revoked while the source was answering: the outbox revokes it by the handle just recorded.
    if (!marked || marked.state !== 'active')
      throw new TemporarilyUnavailable('the lease was revoked while its credential was issued; try again');
    const expiresIn = Math.round((marked.expiresAt - lease.issuedAt) / 1000);
    return { leaseId: lease.id, expiresAt: new Date(marked.expiresAt), expiresIn, credential: issued.credential };
  }

  private gate(): Pick<ApprovalGate, 'named' | 'ask'> {
    if (!this.approvals) throw new TemporarilyUnavailable('approvals are not available');
    return this.approvals;
  }

  private pending(approvalId: string, expiresAt: Date, decisionId: string): never {
    this.observe('pending', 'approval_required');
    traceDecision(decisionId, 'pending', ['approval_required']);
    throw new ApprovalPending(approvalId, expiresAt, decisionId);
  }

  /**
   * A committed lease without a credential must not stay usable. A source that certainly created
   * nothing leaves no lease behind; otherwise the lease is revoked (audited, and for a source,
   * through the outbox, which revokes whatever the source may hold).
   */
  private async undoUnminted(leaseId: string, kind: string, error: unknown): Promise<void> {
    if (error instanceof SourceError && error.nothingIssued) {
      if (await this.leases.dropUnissued(leaseId, { kind, error: error.code })) return;
    }
    await this.revocation.revokeLease(leaseId, 'mint_failed', ACTOR);
  }

  private async deny(
    decision: DecisionRecord,
    reason: DenyReason | PolicyDenyReason | ApprovalRefusal,
    description: string,
    decidedOn?: { intent: string; policiesKey?: string },
    about: { boundary?: ToolBoundary | undefined; policies?: readonly PolicyRef[] | undefined } = {},
  ): Promise<undefined> {
    const threshold = this.guards.drift?.thresholdFor(reason, about.boundary);
    const { written, suspended } = await this.decisions.recordDenial(
      { ...decision, outcome: 'deny', reasons: [reason] },
      decidedOn,
      threshold,
    );
    if (!written) return undefined;
    this.observe('deny', reason);
    traceDecision(decision.id, 'deny', [reason]);
    // The task's denial count changed (policies may read it): one more in the remembered task.
    if (decision.taskId) this.cache?.denied(decision.taskId);
    if (suspended) {
      // The task is ended (no permit can commit now) and its leases revoked; catch a lease whose
      // permit raced the denial before answering.
      await this.guards.drift!.suspended(decision.taskId!);
      throw new AccessDenied(`${description}; the task is suspended (drift_detected)`, [reason], decision.id, about.policies);
    }
    throw new AccessDenied(description, [reason], decision.id, about.policies);
  }
}

/** The decision that answered, on the `tollgate.decision` span (the active one here). */
function traceDecision(id: string, outcome: 'permit' | 'deny' | 'pending', reasons: string[]): void {
  if (tracingOn()) annotate({ 'tollgate.decision.id': id, 'tollgate.decision.outcome': outcome, 'tollgate.decision.reasons': reasons });
}

/** What the audit log keeps of a payload: proof of what was handed out, never the secret itself. */
function payloadHash(credential: IssuedCredential): string {
  return createHash('sha256').update(JSON.stringify(credential)).digest('base64url');
}
