import { z } from 'zod';
import { APPROVAL_STATUSES, type ApprovalStatus } from '../../../libs/approvals/approval.js';
import { ERROR_CODES } from '../../../libs/errors/errors.js';
import { LEASE_STATES } from '../../../libs/leases/lease.js';
import { TIMELINE_KINDS } from '../../../libs/review/timeline.js';

/**
 * The response bodies as GET /openapi.json documents them. views.ts shapes them; these only
 * describe them, strictly, so a view that grows a field the document lacks fails
 * test/openapi.e2e.spec.ts instead of drifting quietly.
 */

const time = z.iso.datetime({ offset: true });
const nullableTime = time.nullable();
const uuid = z.uuid();

/** What the error filter sends for every 4xx and 5xx (apps/broker/http/error-filter.ts). */
export const errorResponse = z
  .strictObject({
    error: z.enum(ERROR_CODES),
    error_description: z.string(),
    reasons: z.array(z.string()).optional().describe('machine-readable reasons of a denial (intent_mismatch, policy_forbid, task_not_active, ...)'),
    decision_id: uuid.optional().describe('the decision row this refusal left'),
    field: z.string().optional().describe('the input field (dotted path) at fault'),
    approval_id: uuid.optional().describe('authorization_pending at /oauth2/token: the approval to wait for, then repeat with'),
    policies: z
      .array(z.strictObject({ id: z.string(), version: z.int() }))
      .optional()
      .describe('the Cedar policy sets (id and version) that decided a policy denial'),
    problems: z
      .array(z.strictObject({ message: z.string(), line: z.int().optional(), column: z.int().optional() }))
      .optional()
      .describe("Cedar's own messages for a policy that does not parse or validate, with line and column"),
  })
  .describe('Every error: an RFC 6749-style code and a description safe to show; denials add reasons.');

export const taskResponse = z.strictObject({
  task_id: uuid,
  workload_id: z.string(),
  intent: z.string(),
  subject: z.string(),
  context: z.record(z.string(), z.unknown()).describe('what the bot said about the journey when it opened the task'),
  state: z.enum(['active', 'completed', 'revoked', 'expired']),
  created_at: time,
  expires_at: time,
  ended_at: nullableTime,
  end_reason: z.string().nullable(),
});

export const leaseResponse = z.strictObject({
  lease_id: uuid,
  task_id: uuid,
  workload_id: z.string(),
  boundary_id: z.string(),
  boundary_version: z.int(),
  action: z.string(),
  resource: z.string().nullable(),
  credential_kind: z.string(),
  state: z
    .enum(LEASE_STATES)
    .describe('issuing, revoking and revoke_failed only for credentials at a source (vault): revoking waits for the source to confirm; revoke_failed gave up after every retry and is retried daily'),
  issued_at: time,
  expires_at: time,
  revoked_at: nullableTime,
  revoke_reason: z.string().nullable(),
});

export const taskDetailResponse = taskResponse.extend({
  events: z.array(
    z.strictObject({
      event_id: z.string(),
      kind: z.enum(['opened', 'intent_changed', 'completed', 'revoked', 'expired']),
      intent: z.string().nullable(),
      reason: z.string().nullable(),
      at: time,
    }),
  ),
  leases: z.array(leaseResponse),
});

export const taskChangeResponse = taskResponse.extend({
  revoked_leases: z.array(uuid).describe('the leases this change revoked'),
});

export const credentialResponse = z.strictObject({
  lease_id: uuid,
  expires_at: time,
  expires_in: z.int().describe('seconds'),
  credential: z
    .looseObject({ kind: z.string(), access_token: z.string().optional(), token_type: z.string().optional() })
    .describe('kind plus the provider\'s own fields; kind "jwt" carries an RFC 9068 access token; kind "vault" the secret\'s data (or a wrapping_token with wrap_ttl) and lease_duration'),
});

/** 202: the request waits for a reviewer; repeat it with `approval_id` once approved. */
export const approvalPendingResponse = z.strictObject({
  approval_id: uuid,
  status: z.literal('pending'),
  expires_at: time.describe('until when the approval can be decided and used'),
});

export const approvalResponse = z.strictObject({
  approval_id: uuid,
  status: z.enum(APPROVAL_STATUSES as [ApprovalStatus, ...ApprovalStatus[]]).describe('expired: past expires_at; revoked: its task ended or changed intent, or its boundary was disabled (for good)'),
  task_id: uuid,
  workload_id: z.string(),
  boundary_id: z.string(),
  boundary_version: z.int(),
  action: z.string(),
  resource: z.string().nullable(),
  params: z.record(z.string(), z.unknown()).nullable(),
  purpose: z.string().nullable(),
  ttl: z.int().describe('the lease ttl (seconds) the request would have had when asked: the repeat gets at most this'),
  intent: z.string().describe("the task's intent when asked"),
  decision_id: uuid.describe('the pending decision that asked for it'),
  requested_at: time,
  expires_at: time,
  decided_at: nullableTime,
  decided_by: z.string().nullable().describe('reviewer:<key id> or admin:<key id>'),
  reason: z.string().nullable(),
  used_at: nullableTime,
  lease_id: uuid.nullable().describe('the lease it was used for'),
  revoked_at: nullableTime,
  revoke_reason: z.string().nullable().describe("intent_changed, boundary_disabled, or the task's end reason (task_completed, workload_revoked, …)"),
});

export const decisionResponse = z.strictObject({
  decision_id: uuid,
  task_id: uuid.nullable(),
  workload_id: z.string(),
  boundary_id: z.string().nullable(),
  boundary_version: z.int().nullable(),
  action: z.string().nullable(),
  resource: z.string().nullable(),
  outcome: z.enum(['permit', 'deny', 'pending']),
  reasons: z.array(z.string()),
  drift: z
    .enum(['counted', 'suspended_task'])
    .nullable()
    .describe("counted: a denial the drift guard counted towards its task's suspension; suspended_task: the one that reached the threshold"),
  policies: z.array(z.strictObject({ id: z.string(), version: z.int() })).nullable().describe('the Cedar policy sets that decided, when policies applied'),
  lease_id: uuid.nullable().describe("a permit's lease (null for denials and pending requests)"),
  lease_state: leaseResponse.shape.state.nullable().describe("that lease's state now"),
  at: time,
});

export const timelineResponse = z.strictObject({
  task: taskResponse,
  events: z.array(
    z
      .looseObject({
        at: time,
        kind: z.enum(TIMELINE_KINDS),
      })
      .describe('decision.*: decision_id, boundary_id, action, resource, reasons, lease_id?, approval_id?; lease.*: lease_id (and reason when revoked); task.*: intent/reason; approval.*: approval_id, decided_by, reason'),
  ),
});

export const leaseRevokedResponse = leaseResponse.extend({
  revoked_now: z.boolean().describe('this call revoked it (false: it was revoked or expired already)'),
});

const hex64 = z.string().regex(/^[0-9a-f]{64}$/);
const seq = z.string().regex(/^\d+$/).describe('the position the event was written in: a string of digits (a 64-bit integer)');

export const auditEventResponse = z.strictObject({
  id: uuid,
  seq,
  at: time.describe('to the microsecond, exactly as hashed'),
  kind: z.string(),
  actor: z.string().describe('workload:<id>, admin, <role>:<API key id>, or system:<job>'),
  task_id: uuid.nullable(),
  lease_id: uuid.nullable(),
  data: z.record(z.string(), z.unknown()).describe('what happened; tokens and secrets appear only as hashes'),
  prev_hash: hex64.nullable().describe('null until the chainer links the event (within about a second)'),
  hash: hex64.nullable().describe('SHA-256 of prev_hash followed by the canonical JSON of the event; null until linked'),
});

const chainHead = z.strictObject({ seq, hash: hex64 });

export const auditVerifyResponse = z.strictObject({
  ok: z.boolean(),
  verified: z.int().describe('linked events whose hashes and links were recomputed and held'),
  head: chainHead.nullable().describe('the last verified event; null when nothing is linked yet'),
  unchained: z.int().describe('events not linked yet: a normal tail while their transactions end'),
  first_broken: z
    .strictObject({ seq, id: uuid, reason: z.enum(['altered', 'missing', 'reordered']) })
    .optional()
    .describe('altered: its content or hash changed; missing: the event before it is gone; reordered: the event before it is elsewhere'),
});

export const auditCheckpointResponse = z.strictObject({
  checkpoint: z.string().describe('compact JWS (typ tollgate-audit-checkpoint+jwt) over {iss, seq, hash, iat}, verifiable with /.well-known/jwks.json'),
  seq: seq.describe('the head signed ("0" for an empty chain)'),
  hash: hex64,
  issued_at: time,
});

const page = <T extends z.ZodType>(item: T) =>
  z.strictObject({ items: z.array(item), next_cursor: z.string().nullable().describe('pass as ?cursor= for the next page; null on the last') });
export const leasePage = page(leaseResponse);
export const decisionPage = page(decisionResponse);
export const approvalPage = page(approvalResponse);
export const auditPage = page(auditEventResponse);

export const boundaryResponse = z.strictObject({
  id: z.string(),
  version: z.int(),
  tool: z.string(),
  actions: z.array(z.string()),
  intents: z.array(z.string()),
  default_ttl: z.int(),
  max_ttl: z.int(),
  credential: z.looseObject({ kind: z.string() }),
  sensitivity: z.enum(['low', 'medium', 'high']),
  drift_threshold: z.int().optional().describe('drift denials a task may have collected (this one included) when this boundary denies it, before it is suspended; absent: TOLLGATE_DRIFT_THRESHOLD'),
  enabled: z.boolean(),
  approval: z.strictObject({ when: z.string(), ttl: z.int() }).optional().describe('human approval: requests the Cedar condition holds for wait for a reviewer'),
  policy: z.string().optional().describe("the boundary's own Cedar policy set (absent when it has none)"),
  created_at: time,
});
export const boundaryChangeResponse = boundaryResponse.extend({ revoked_leases: z.int().describe('how many leases this change revoked') });
export const boundaryList = z.strictObject({ items: z.array(boundaryResponse) });

const policyRef = z.strictObject({ id: z.string(), version: z.int() });

export const policyResponse = z.strictObject({
  id: z.string(),
  version: z.int(),
  policy: z.string().describe('Cedar text'),
  description: z.string().nullable(),
  enabled: z.boolean(),
  created_at: time,
});
export const policyList = z.strictObject({ items: z.array(policyResponse) });

export const simulationResponse = z.strictObject({
  decision: z.enum(['permit', 'deny']),
  reasons: z.array(z.string()),
  policies: z.array(policyRef).describe('the policy sets that decided'),
  errors: z.array(z.string()).describe('policies that failed to evaluate'),
  approval_required: z.boolean().describe('a permit that would wait for a reviewer (202 pending): the boundary\'s approval rule or an @approval("required") permit'),
  boundary_version: z.int().nullable(),
});

const flips = z.strictObject({ count: z.int(), examples: z.array(uuid).describe('a few decision ids') });
export const whatIfResponse = z.strictObject({
  since: time,
  until: time,
  replayed: z.int().describe('recorded decisions replayed against the proposal'),
  truncated: z.boolean().describe('the window held more decisions than the limit'),
  permits_now_denied: flips,
  denials_now_permitted: flips,
  elapsed_ms: z.number(),
  decisions_per_second: z.int(),
});

const jwk = z.looseObject({ kty: z.string(), kid: z.string().optional() });
const jwkSet = z.strictObject({ keys: z.array(jwk) });

export const workloadResponse = z.strictObject({
  id: z.string(),
  jwks: jwkSet.optional().describe('registered keys (absent when the workload is bound to an issuer)'),
  issuer: z.string().optional().describe('the trusted issuer (its id) whose tokens authenticate this workload'),
  subject: z.string().optional().describe("the token's sub this workload is bound to"),
  enabled: z.boolean(),
  rate_limit: z
    .strictObject({ per_second: z.number().optional(), per_minute: z.int().optional(), per_hour: z.int().optional(), burst: z.int() })
    .optional()
    .describe("its own limit on credential requests, in the unit it was given in; absent: the service's (TOLLGATE_RATE_LIMIT)"),
  revision: z.int(),
  created_at: time,
  updated_at: time,
});
export const workloadList = z.strictObject({ items: z.array(workloadResponse) });
export const workloadRevokedResponse = z.strictObject({
  workload_id: z.string(),
  enabled: z.literal(false),
  revoked_tasks: z.int(),
  revoked_leases: z.int(),
});

/** RFC 8693 §2.2.1, plus the lease the token is bound to. */
export const tokenResponse = z.strictObject({
  access_token: z.string(),
  issued_token_type: z.literal('urn:ietf:params:oauth:token-type:access_token'),
  token_type: z.enum(['Bearer', 'DPoP']).describe('DPoP when the request carried a DPoP proof'),
  expires_in: z.int(),
  scope: z.string(),
  lease_id: uuid,
});

/** RFC 7662 §2.2: an inactive token says nothing else. */
export const introspectionResponse = z.union([
  z.strictObject({ active: z.literal(false) }),
  z.strictObject({
    active: z.literal(true),
    iss: z.string(),
    sub: z.string(),
    aud: z.union([z.string(), z.array(z.string())]),
    exp: z.int(),
    iat: z.int(),
    nbf: z.int(),
    jti: uuid,
    client_id: z.string(),
    scope: z.string(),
    token_type: z.enum(['Bearer', 'DPoP']),
    cnf: z.strictObject({ jkt: z.string() }).optional().describe('DPoP-bound: the RFC 7638 thumbprint of the proof key'),
    act: z.looseObject({ sub: z.string() }),
    task_id: uuid,
    lease_state: z.literal('active'),
  }),
]);

export const revocationResponse = z.strictObject({}).describe('RFC 7009: 200 whether or not the token was known');

export const jwksResponse = jwkSet;

/** RFC 8414. */
export const metadataResponse = z.strictObject({
  issuer: z.url(),
  jwks_uri: z.url(),
  token_endpoint: z.url(),
  introspection_endpoint: z.url(),
  revocation_endpoint: z.url(),
  token_endpoint_auth_methods_supported: z.array(z.string()),
  introspection_endpoint_auth_methods_supported: z.array(z.string()),
  introspection_endpoint_auth_signing_alg_values_supported: z.array(z.string()),
  revocation_endpoint_auth_methods_supported: z.array(z.string()),
  revocation_endpoint_auth_signing_alg_values_supported: z.array(z.string()),
  grant_types_supported: z.array(z.string()),
  response_types_supported: z.array(z.string()),
  scopes_supported: z.array(z.string()),
  access_token_signing_alg_values_supported: z.array(z.string()),
  dpop_signing_alg_values_supported: z.array(z.string()),
  authorization_details_types_supported: z.array(z.string()),
});

export const issuerResponse = z.strictObject({
  id: z.string(),
  issuer: z.string().describe('the exact iss of its tokens'),
  kind: z.enum(['spiffe', 'kubernetes', 'oidc']),
  trust_domain: z.string().optional(),
  jwks_uri: z.string().optional(),
  jwks: jwkSet.optional(),
  audiences: z.array(z.string()),
  enabled: z.boolean(),
  revision: z.int(),
  created_at: time,
  updated_at: time,
});
export const issuerList = z.strictObject({ items: z.array(issuerResponse) });
export const issuerWithdrawnResponse = issuerResponse.extend({
  revoked_workloads: z.array(z.string()).describe('the workloads bound to it, now disabled'),
  revoked_tasks: z.int(),
  revoked_leases: z.int(),
});

const signingKey = z.strictObject({
  kid: z.string(),
  alg: z.enum(['EdDSA', 'ES256']),
  state: z.enum(['next', 'active', 'retired']).describe('next: published, not yet signing; retired: published until everything it signed has expired'),
  created_at: time,
  activated_at: nullableTime,
  retired_at: nullableTime,
  publish_until: nullableTime,
});
export const signingKeyList = z.strictObject({ active_kid: z.string(), keys: z.array(signingKey) });
export const signingKeyRotation = z.strictObject({
  active_kid: z.string(),
  retired_kid: z.string().nullable(),
  next_kid: z.string(),
  keys: z.array(signingKey),
});

export const apiKeyResponse = z.strictObject({
  id: z.string(),
  role: z.enum(['admin', 'reviewer', 'resource_server']),
  audience: z.string().optional().describe('resource_server keys: the tool (token aud) it serves'),
  label: z.string().optional(),
  jwks: jwkSet.optional().describe('public keys for private_key_jwt'),
  created_at: time,
  revoked_at: nullableTime,
});
export const createdApiKeyResponse = apiKeyResponse.extend({ key: z.string().describe('the key itself: shown this once, stored only as a hash') });
export const apiKeyList = z.strictObject({ items: z.array(apiKeyResponse) });

export const healthResponse = z.strictObject({ status: z.literal('ok') });
export const readinessResponse = z.strictObject({ status: z.enum(['ready', 'unavailable']), database: z.string() });

/** Named in components.schemas; an operation answering one of these refers to it by name. */
export const RESPONSE_COMPONENTS: Record<string, z.ZodType> = {
  Error: errorResponse,
  Task: taskResponse,
  TaskDetail: taskDetailResponse,
  TaskChange: taskChangeResponse,
  TaskTimeline: timelineResponse,
  LeaseRevoked: leaseRevokedResponse,
  CredentialResponse: credentialResponse,
  Lease: leaseResponse,
  LeasePage: leasePage,
  Decision: decisionResponse,
  ApprovalPending: approvalPendingResponse,
  Approval: approvalResponse,
  ApprovalPage: approvalPage,
  DecisionPage: decisionPage,
  AuditEvent: auditEventResponse,
  AuditPage: auditPage,
  AuditVerification: auditVerifyResponse,
  AuditCheckpoint: auditCheckpointResponse,
  Boundary: boundaryResponse,
  BoundaryChange: boundaryChangeResponse,
  BoundaryList: boundaryList,
  Policy: policyResponse,
  PolicyList: policyList,
  Simulation: simulationResponse,
  WhatIf: whatIfResponse,
  Workload: workloadResponse,
  WorkloadList: workloadList,
  WorkloadRevoked: workloadRevokedResponse,
  TokenResponse: tokenResponse,
  Introspection: introspectionResponse,
  Revocation: revocationResponse,
  Jwks: jwksResponse,
  Metadata: metadataResponse,
  Issuer: issuerResponse,
  IssuerList: issuerList,
  IssuerWithdrawn: issuerWithdrawnResponse,
  SigningKeyList: signingKeyList,
  SigningKeyRotation: signingKeyRotation,
  ApiKey: apiKeyResponse,
  CreatedApiKey: createdApiKeyResponse,
  ApiKeyList: apiKeyList,
  Health: healthResponse,
  Readiness: readinessResponse,
};
