import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import type { JWK } from 'jose';
import { z } from 'zod';
import { credentialSettings } from '../../../libs/credentials/catalog.js';
import { InvalidRequest } from '../../../libs/errors/errors.js';
import { describeUnstorable, findUnstorable, jsonText } from '../../../libs/db/storable.js';
import { TRUST_DOMAIN, type IssuerDefinition } from '../../../libs/identity/issuer.js';
import { PRIVATE_JWK_MEMBERS, RATE_INTERVALS, WORKLOAD_ID, algorithmsFor, type WorkloadRateLimit } from '../../../libs/identity/workload.js';
import { defaultBurst } from '../../../libs/config/config.js';
import { APPROVAL_STATUSES, type ApprovalStatus } from '../../../libs/approvals/approval.js';
import { LEASE_STATES } from '../../../libs/leases/lease.js';
import { AUDIT_KINDS } from '../../../libs/audit/audit.js';
import { approvalConditionBounds } from '../../../libs/policy/cedar.js';
import { DEFAULT_APPROVAL_TTL_S, type BoundaryDefinition } from '../../../libs/policy/boundary.js';
import { MAX_TASK_TTL_S } from '../../../libs/tasks/task.js';

/**
 * HTTP input schemas. Objects are strict (an unknown field is an error naming it), strings refuse
 * control characters and broken unicode, and every error names the offending field.
 */
export function parse<T extends z.ZodType>(
  schema: T,
  input: unknown,
  where = 'body',
  /** Fields decided and recorded whatever they hold (a credential request's params): not refused here. */
  options: { decided?: readonly (readonly (string | number)[])[] } = {},
): z.infer<T> {
  // Before the schema: its refinements (and everything after it) may recurse, and the database
  // cannot keep NUL or lone surrogates. The first such value anywhere, keys included, is a 400.
  const decided = options.decided ?? [];
  const problem = findUnstorable(input, { skip: (path) => decided.some((field) => samePath(field, path)) });
  if (problem) {
    const path = problem.path.length ? fieldName(problem.path) : where;
    throw new InvalidRequest(`${path}: ${describeUnstorable(problem)}`, { field: path });
  }
  const result = schema.safeParse(input ?? {});
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const path = issue.path.length ? issue.path.map(String).join('.') : where;
  if (issue.code === 'unrecognized_keys') {
    const field = [...issue.path.map(String), issue.keys[0]].join('.');
    throw new InvalidRequest(`unknown field "${field}"`, { field });
  }
  throw new InvalidRequest(`${path}: ${issue.message}`, { field: path });
}

function samePath(a: readonly (string | number)[], b: readonly (string | number)[]): boolean {
  return a.length === b.length && a.every((part, index) => String(part) === String(b[index]));
}

/** A field path for an error: dotted, and short enough to echo (a key may be a megabyte long). */
function fieldName(path: readonly (string | number)[]): string {
  const name = path.map(String).join('.');
  return name.length > 256 ? `${name.slice(0, 256)}…` : name;
}

const cleanText = (max: number) =>
  z
    .string()
    .min(1, 'must not be empty')
    .max(max, `must be at most ${max} characters`)
    .refine((value) => value.isWellFormed() && !/[\u0000-\u001f\u007f-\u009f\u200e\u200f\u2028-\u202e\u2066-\u2069\ufeff]/.test(value), 'must not contain control characters, bidi controls or broken unicode');

export const ID = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const id = z.string().regex(ID, 'must match [a-z0-9][a-z0-9._-]{0,62}');
const intent = z.string().regex(/^[a-z0-9][a-z0-9._:-]{0,127}$/, 'must match [a-z0-9][a-z0-9._:-]{0,127}');
const action = z.string().regex(/^[a-z0-9][a-zA-Z0-9._:/-]{0,127}$/, 'must match [a-z0-9][a-zA-Z0-9._:/-]{0,127}');
const ttl = (max: number) => z.number().int('must be an integer').min(1, 'must be at least 1').max(max, `must be at most ${max}`);

/** Cedar text: newlines and tabs are its whitespace; other control characters are refused. */
const policyText = z
  .string()
  .min(1, 'must not be empty')
  .max(65_536, 'must be at most 65536 characters')
  .refine((value) => value.isWellFormed() && !/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200e\u200f\u2028-\u202e\u2066-\u2069\ufeff]/.test(value), 'must not contain control characters other than newlines and tabs, bidi controls or broken unicode');

export const boundaryBody = z
  .strictObject({
    tool: cleanText(512).refine((value) => !/\s/.test(value), 'must not contain spaces'),
    actions: z.array(action).min(1, 'must list at least one action').max(64, 'must list at most 64 actions'),
    intents: z.array(intent).min(1, 'must list at least one intent').max(64, 'must list at most 64 intents'),
    default_ttl: ttl(3600),
    max_ttl: ttl(3600),
    credential: credentialSettings,
    sensitivity: z.enum(['low', 'medium', 'high']).default('low'),
    drift_threshold: z.number().int('must be an integer').min(1, 'must be at least 1').max(1000, 'must be at most 1000').nullable().default(null),
    enabled: z.boolean().default(true),
    /** Human approval (step-up): `when` is a Cedar condition, bounded here and parsed by Cedar (in its own process) on write. */
    approval: z
      .strictObject({
        when: z
          .string()
          .min(1, 'must not be empty')
          .superRefine((value, ctx) => {
            const [problem] = approvalConditionBounds(value);
            if (!problem) return;
            const where = problem.line !== undefined ? ` at line ${problem.line}, column ${problem.column}` : '';
            ctx.addIssue({ code: 'custom', message: `is not a valid Cedar condition: ${problem.message}${where}` });
          }),
        ttl: ttl(86_400).default(DEFAULT_APPROVAL_TTL_S),
      })
      .optional(),
    policy: policyText.nullable().default(null).describe("the boundary's own Cedar policy set, versioned with it"),
  })
  .refine((body) => body.default_ttl <= body.max_ttl, { message: 'must not exceed max_ttl', path: ['default_ttl'] })
  .refine((body) => new Set(body.actions).size === body.actions.length, { message: 'must not repeat an action', path: ['actions'] })
  .refine((body) => new Set(body.intents).size === body.intents.length, { message: 'must not repeat an intent', path: ['intents'] });

export function toBoundaryDefinition(body: z.infer<typeof boundaryBody>): BoundaryDefinition {
  return {
    tool: body.tool,
    actions: body.actions,
    intents: body.intents,
    defaultTtl: body.default_ttl,
    maxTtl: body.max_ttl,
    credential: body.credential,
    sensitivity: body.sensitivity,
    driftThreshold: body.drift_threshold,
    enabled: body.enabled,
    approval: body.approval ?? null,
    policy: body.policy,
  };
}

const b64url = z.string().regex(/^[A-Za-z0-9_-]+$/, 'must be base64url').max(256);
const publicJwk = z
  .looseObject({
    kty: z.enum(['OKP', 'EC']),
    crv: z.string(),
    x: b64url,
    y: b64url.optional(),
    kid: cleanText(128).optional(),
    alg: z.string().optional(),
    use: z.literal('sig').optional(),
    // A workload key only ever verifies assertions.
    key_ops: z.array(z.literal('verify')).length(1, 'must be ["verify"]').optional(),
  })
  .superRefine((jwk, ctx) => {
    let problems = 0;
    for (const member of PRIVATE_JWK_MEMBERS) {
      if (member in jwk) {
        problems++;
        ctx.addIssue({ code: 'custom', message: `private key material ("${member}") is not accepted; register public keys only` });
      }
    }
    const algorithms = algorithmsFor(jwk as JWK);
    if (algorithms.length === 0) ctx.addIssue({ code: 'custom', message: 'only Ed25519 (OKP) and P-256 (EC) keys are accepted' });
    else if (jwk.alg !== undefined && !algorithms.includes(jwk.alg)) ctx.addIssue({ code: 'custom', message: `alg ${jwk.alg} does not fit the key` });
    if (jwk.kty === 'EC' && jwk.y === undefined) ctx.addIssue({ code: 'custom', message: 'an EC key needs "y"' });
    else if (problems === 0 && algorithms.length > 0 && !isPublicKey(jwk)) {
      // A point that is not on the curve, or an x of the wrong length, could never verify anything.
      ctx.addIssue({ code: 'custom', message: `is not a valid ${jwk.crv} public key` });
    }
    const known = new Set(['kty', 'crv', 'x', 'y', 'kid', 'alg', 'use', 'key_ops', ...PRIVATE_JWK_MEMBERS]);
    for (const member of Object.keys(jwk)) {
      if (!known.has(member)) ctx.addIssue({ code: 'custom', message: `unknown JWK member "${member}"` });
    }
  });

/** True when Node can build a public key from the JWK's public members (on the curve, right length). */
function isPublicKey(jwk: { kty: string; crv: string; x: string; y?: string | undefined }): boolean {
  try {
    const key = { kty: jwk.kty, crv: jwk.crv, x: jwk.x, ...(jwk.y === undefined ? {} : { y: jwk.y }) };
    createPublicKey({ key, format: 'jwk' });
    return true;
  } catch {
    return false;
  }
}

/**
 * A workload's own token bucket, as Vault's rate-limit quotas and Envoy's token buckets are written:
 * a refill rate in exactly one unit, and how many requests may come at once. Every bound is the
 * same rate range as TOLLGATE_RATE_LIMIT's at most (100 000 a second).
 */
const rateLimitBody = z
  .strictObject({
    per_second: z.number().min(0.001, 'must be at least 0.001').max(100_000, 'must be at most 100000').optional(),
    per_minute: z.number().int('must be an integer').min(1, 'must be at least 1').max(6_000_000, 'must be at most 6000000').optional(),
    per_hour: z.number().int('must be an integer').min(1, 'must be at least 1').max(360_000_000, 'must be at most 360000000').optional(),
    burst: z.number().int('must be an integer').min(1, 'must be at least 1').max(1_000_000, 'must be at most 1000000').optional(),
  })
  .superRefine((limit, ctx) => {
    const given = (['per_second', 'per_minute', 'per_hour'] as const).filter((unit) => limit[unit] !== undefined);
    if (given.length !== 1) ctx.addIssue({ code: 'custom', message: `give exactly one of per_second, per_minute, per_hour${given.length ? ` (got ${given.join(' and ')})` : ''}` });
  })
  .describe("the workload's own limit on credential requests; burst defaults to twice the per-second rate, at least 1");

/** The limit as the domain keeps it; null when the body names none (the service's applies). */
export function toWorkloadRateLimit(limit: z.infer<typeof rateLimitBody> | null | undefined): WorkloadRateLimit | null {
  if (!limit) return null;
  const [requests, per] =
    limit.per_second !== undefined ? [limit.per_second, 'second' as const]
    : limit.per_minute !== undefined ? [limit.per_minute, 'minute' as const]
    : [limit.per_hour!, 'hour' as const];
  return { requests, per, burst: limit.burst ?? defaultBurst(requests / RATE_INTERVALS[per]) };
}

/** A workload proves itself with registered keys (`jwks`) or through a trusted issuer (`issuer` + `subject`). */
export const workloadBody = z
  .strictObject({
    jwks: z.strictObject({ keys: z.array(publicJwk).min(1, 'must hold at least one key').max(10, 'must hold at most 10 keys') }).optional(),
    issuer: id.optional(),
    subject: cleanText(2048).refine((value) => !/\s/.test(value), 'must not contain spaces').optional(),
    /** Absent: a new workload is enabled, an existing one keeps its state (a kill switch stays on). */
    enabled: z.boolean().optional(),
    /** Absent or null: the service's limit (TOLLGATE_RATE_LIMIT) applies. PUT replaces: absent clears an override. */
    rate_limit: rateLimitBody.nullable().optional(),
  })
  .superRefine((body, ctx) => {
    const bound = body.issuer !== undefined || body.subject !== undefined;
    if (body.jwks !== undefined && bound) ctx.addIssue({ code: 'custom', path: ['jwks'], message: 'give either jwks or issuer + subject, not both' });
    else if (body.jwks === undefined && !bound) ctx.addIssue({ code: 'custom', path: ['jwks'], message: 'is required (or issuer + subject, to authenticate through a trusted issuer)' });
    else if (bound && body.issuer === undefined) ctx.addIssue({ code: 'custom', path: ['issuer'], message: 'is required with subject' });
    else if (bound && body.subject === undefined) ctx.addIssue({ code: 'custom', path: ['subject'], message: 'is required with issuer' });
  });

/** Hosts a development JWKS may be served from over plain http. */
const LOOPBACK_HOSTS = new Set(['127.0.0.1', '[::1]', 'localhost']);

/** An http(s) URL without credentials or fragment; plain http only where `httpAllowed` says so. */
const url = (httpAllowed: (url: URL) => boolean, rule: string) =>
  cleanText(2048)
    .refine((value) => !/\s/.test(value), 'must not contain spaces')
    .superRefine((value, ctx) => {
      let parsed: URL;
      try {
        parsed = new URL(value);
      } catch {
        ctx.addIssue({ code: 'custom', message: 'must be an absolute URL' });
        return;
      }
      if (parsed.username !== '' || parsed.password !== '') ctx.addIssue({ code: 'custom', message: 'must not carry credentials' });
      else if (parsed.hash !== '') ctx.addIssue({ code: 'custom', message: 'must not carry a fragment' });
      else if (parsed.protocol !== 'https:' && !(parsed.protocol === 'http:' && httpAllowed(parsed))) ctx.addIssue({ code: 'custom', message: rule });
    });

/** The signature algorithms an issuer key may serve, decided by the key. */
function issuerAlgorithmsFor(jwk: { kty: string; crv?: string | undefined }): readonly string[] {
  if (jwk.kty === 'RSA') return ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'];
  if (jwk.kty === 'EC') return { 'P-256': ['ES256'], 'P-384': ['ES384'], 'P-521': ['ES512'] }[jwk.crv ?? ''] ?? [];
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') return ['EdDSA', 'Ed25519'];
  return [];
}

/** Public JWK members an issuer's published key set may carry (x5c/x5t describe the key; x5u would fetch). */
const ISSUER_JWK_MEMBERS = new Set(['kty', 'crv', 'x', 'y', 'n', 'e', 'kid', 'alg', 'use', 'key_ops', 'x5c', 'x5t', 'x5t#S256']);

const issuerJwk = z
  .looseObject({
    kty: z.enum(['RSA', 'EC', 'OKP'], 'must be RSA, EC or OKP (asymmetric keys only)'),
    kid: cleanText(256).optional(),
    alg: z.string().max(16).optional(),
    use: z.literal('sig').optional(),
    key_ops: z.array(z.literal('verify')).length(1, 'must be ["verify"]').optional(),
  })
  .superRefine((jwk, ctx) => {
    const privateMembers = PRIVATE_JWK_MEMBERS.filter((member) => member in jwk);
    for (const member of privateMembers) {
      ctx.addIssue({ code: 'custom', message: `private key material ("${member}") is not accepted; give the issuer's public keys only` });
    }
    for (const member of Object.keys(jwk)) {
      if (!ISSUER_JWK_MEMBERS.has(member) && !(PRIVATE_JWK_MEMBERS as readonly string[]).includes(member)) {
        ctx.addIssue({ code: 'custom', message: `unknown JWK member "${member}"` });
      }
    }
    if (privateMembers.length > 0) return;
    const algorithms = issuerAlgorithmsFor(jwk as { kty: string; crv?: string });
    if (algorithms.length === 0) {
      ctx.addIssue({ code: 'custom', message: 'only RSA, EC P-256/P-384/P-521 and Ed25519 keys are accepted' });
      return;
    }
    if (jwk.alg !== undefined && !algorithms.includes(jwk.alg)) ctx.addIssue({ code: 'custom', message: `alg ${jwk.alg} does not fit the key` });
    const key = issuerPublicKey(jwk);
    if (!key) ctx.addIssue({ code: 'custom', message: 'is not a valid public key' });
    else if (jwk.kty === 'RSA' && (key.asymmetricKeyDetails?.modulusLength ?? 0) < 2048) {
      ctx.addIssue({ code: 'custom', message: 'an RSA key needs at least 2048 bits' });
    }
  });

/** The Node public key for an issuer JWK's public members, or undefined when they do not make one. */
function issuerPublicKey(jwk: Record<string, unknown>): KeyObject | undefined {
  const members = jwk.kty === 'RSA' ? ['kty', 'n', 'e'] : jwk.kty === 'EC' ? ['kty', 'crv', 'x', 'y'] : ['kty', 'crv', 'x'];
  if (members.some((member) => typeof jwk[member] !== 'string' || (jwk[member] as string).length > 2048)) return undefined;
  try {
    return createPublicKey({ key: Object.fromEntries(members.map((member) => [member, jwk[member]])) as JsonWebKey, format: 'jwk' });
  } catch {
    return undefined;
  }
}

export const issuerBody = z
  .strictObject({
    /** The exact `iss` of the issuer's tokens; never fetched. */
    issuer: url(() => true, 'must be an http(s) URL'),
    kind: z.enum(['spiffe', 'kubernetes', 'oidc'], 'must be "spiffe", "kubernetes" or "oidc"'),
    trust_domain: z.string().regex(TRUST_DOMAIN, 'must be a SPIFFE trust domain name ([a-z0-9._-], at most 255 characters)').optional(),
    jwks_uri: url((parsed) => LOOPBACK_HOSTS.has(parsed.hostname), 'must be https (plain http only on a loopback host: 127.0.0.1, ::1, localhost)').optional(),
    jwks: z.strictObject({ keys: z.array(issuerJwk).min(1, 'must hold at least one key').max(20, 'must hold at most 20 keys') }).optional(),
    /** A token's aud must contain one of these; absent: Tollgate's issuer URL. */
    audiences: z
      .array(cleanText(512).refine((value) => !/\s/.test(value), 'must not contain spaces'))
      .min(1, 'must list at least one audience')
      .max(10, 'must list at most 10 audiences')
      .optional(),
    /** Absent: a new issuer is trusted, an existing one keeps its state (a DELETE stays in force). */
    enabled: z.boolean().optional(),
  })
  .superRefine((body, ctx) => {
    if ((body.jwks_uri === undefined) === (body.jwks === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['jwks_uri'], message: 'exactly one of jwks_uri and jwks is required' });
    }
    if (body.kind === 'spiffe' && body.trust_domain === undefined) ctx.addIssue({ code: 'custom', path: ['trust_domain'], message: 'is required for a spiffe issuer' });
    if (body.kind !== 'spiffe' && body.trust_domain !== undefined) ctx.addIssue({ code: 'custom', path: ['trust_domain'], message: 'is only for a spiffe issuer' });
  });

export function toIssuerDefinition(body: z.infer<typeof issuerBody>, defaultAudience: string): IssuerDefinition {
  return {
    issuer: body.issuer,
    kind: body.kind,
    trustDomain: body.trust_domain ?? null,
    jwksUri: body.jwks_uri ?? null,
    jwks: body.jwks === undefined ? null : { keys: body.jwks.keys as JWK[] },
    audiences: body.audiences ?? [defaultAudience],
  };
}

/**
 * POST /v1/admin/api-keys. A resource server names its tool (`audience`, the boundary `tool` and
 * token `aud`) and may register public keys for private_key_jwt; the other roles take neither.
 */
export const apiKeyBody = z
  .strictObject({
    role: z.enum(['admin', 'reviewer', 'resource_server'], 'must be "admin", "reviewer" or "resource_server"'),
    audience: cleanText(512).refine((value) => !/\s/.test(value), 'must not contain spaces').optional(),
    label: cleanText(128).optional(),
    jwks: z.strictObject({ keys: z.array(publicJwk).min(1, 'must hold at least one key').max(10, 'must hold at most 10 keys') }).optional(),
  })
  .superRefine((body, ctx) => {
    if (body.role === 'resource_server' && body.audience === undefined) {
      ctx.addIssue({ code: 'custom', message: 'is required for a resource_server key (the tool it serves)', path: ['audience'] });
    }
    if (body.role !== 'resource_server' && body.audience !== undefined) {
      ctx.addIssue({ code: 'custom', message: `is only for resource_server keys; a ${body.role} key is not held to one tool`, path: ['audience'] });
    }
    if (body.role !== 'resource_server' && body.jwks !== undefined) {
      ctx.addIssue({ code: 'custom', message: 'is only for resource_server keys (private_key_jwt client authentication)', path: ['jwks'] });
    }
  });

/**
 * The client authentication members of an RFC 7662 / 7009 form (RFC 6749 §2.3.1, RFC 7521 §4.2);
 * the endpoint's own members are checked by its schema.
 */
export const clientAuthForm = z.looseObject({
  client_id: z.string().min(1, 'must not be empty').max(256).optional(),
  client_secret: z.string().min(1, 'must not be empty').max(512).optional(),
  client_assertion_type: z.string().max(256).optional(),
  client_assertion: z.string().max(8192).optional(),
});

export const openTaskBody = z.strictObject({
  intent,
  subject: cleanText(256),
  ttl: ttl(MAX_TASK_TTL_S).optional(),
  context: z
    .record(z.string().max(128), z.unknown())
    .refine((value) => jsonText(value).length <= 4096, 'must serialise to at most 4 KiB')
    .optional(),
});

export const intentBody = z.strictObject({ intent });

export const credentialBody = z.strictObject({
  boundary: id,
  action,
  resource: cleanText(1024).optional(),
  params: z
    .record(z.string().max(128), z.unknown())
    .refine((value) => jsonText(value).length <= 16_384, 'must serialise to at most 16 KiB')
    .optional(),
  purpose: cleanText(512).optional(),
  ttl: ttl(3600).optional(),
  /** Repeats a request that needed approval: the id from the 202 answer. */
  approval_id: z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'must be a UUID').optional(),
});

export const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const JWT_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
export const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

/** RFC 8693 parameters. Unrecognised parameters are ignored, as RFC 6749 §3.2 requires. */
export const tokenExchangeForm = z.looseObject({
  grant_type: z.literal(TOKEN_EXCHANGE),
  subject_token: z.string().min(1, 'is required').max(8192),
  subject_token_type: z.literal(JWT_TOKEN_TYPE, `must be ${JWT_TOKEN_TYPE}`),
  audience: cleanText(512).optional(),
  scope: z.string().max(256).optional(),
  authorization_details: z.string().min(1, 'is required').max(20_000),
  requested_token_type: z.enum([ACCESS_TOKEN_TYPE, JWT_TOKEN_TYPE]).optional(),
  client_id: z.string().max(2048).optional(),
});

/** RFC 9396 authorization details: exactly one tool call. */
export const toolCallDetails = z
  .array(
    credentialBody
      .omit({ ttl: true, purpose: true })
      .extend({ type: z.literal('tool_call', 'must be "tool_call"'), task_id: z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'must be a UUID') }),
  )
  .length(1, 'must hold exactly one tool_call');

/** Documents the DPoP request header (RFC 9449); the proof itself is checked in libs/identity/dpop. */
export const dpopHeader = z.string().describe('an RFC 9449 DPoP proof (a JWT with typ dpop+jwt): binds the issued credential to the proof key (cnf.jkt)');

export const tokenForm = z.looseObject({ token: z.string().min(1, 'is required').max(16_384), token_type_hint: z.string().max(64).optional() });

const timestamp = z
  .string()
  .refine(isRfc3339, 'must be an RFC 3339 timestamp (e.g. 2025-01-31T12:00:00Z) or a date')
  .transform((value) => new Date(value));

/** A full RFC 3339 date-time with its offset, or a full-date (UTC midnight); no calendar overflow. */
function isRfc3339(value: string): boolean {
  const match = /^(\d{4})-(\d{2})-(\d{2})(?:[Tt](\d{2}):(\d{2}):(\d{2})(?:\.\d{1,9})?(?:[Zz]|[+-](\d{2}):(\d{2})))?$/.exec(value);
  if (!match) return false;
  const [year, month, day, hour = 0, minute = 0, second = 0, offsetHour = 0, offsetMinute = 0] = match.slice(1).map((part) => (part === undefined ? undefined : Number(part)));
  const daysInMonth = new Date(Date.UTC(year!, month!, 0)).getUTCDate();
  return (
    month! >= 1 && month! <= 12 && day! >= 1 && day! <= daysInMonth &&
    hour <= 23 && minute <= 59 && second <= 59 && offsetHour <= 23 && offsetMinute <= 59 &&
    !Number.isNaN(Date.parse(value))
  );
}
const uuid = z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'must be a UUID');
const limit = z
  .string()
  .regex(/^\d{1,4}$/, 'must be an integer from 1 to 1000')
  .transform(Number)
  .refine((value) => value >= 1 && value <= 1000, 'must be an integer from 1 to 1000')
  .default(100);
const cursor = z
  .string()
  .max(64)
  .transform((value, ctx) => {
    const decoded = Buffer.from(value, 'base64url').toString('utf8');
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(decoded)) {
      ctx.addIssue({ code: 'custom', message: 'is not a cursor this API returned' });
      return z.NEVER;
    }
    return decoded;
  });

const reviewFilters = {
  task: uuid.optional(),
  workload: z.string().max(2048).optional(),
  boundary: id.optional(),
  since: timestamp.optional(),
  until: timestamp.optional(),
  limit,
  cursor: cursor.optional(),
};

/** Leases and decisions also answer "who could call this tool, for whom, to do what". */
const callFilters = {
  subject: cleanText(256).optional().describe("the task's end-user subject"),
  tool: cleanText(512).optional().describe('the boundary tool (token audience)'),
  action: action.optional(),
};

/** A window that ends before it starts would only ever answer "nothing": say so instead of an empty page. */
const sinceBeforeUntil = (filter: { since?: Date | undefined; until?: Date | undefined }) => !filter.since || !filter.until || filter.since < filter.until;
const SINCE_BEFORE_UNTIL = { message: 'must be before until', path: ['since'] };

export const leaseQuery = z
  .strictObject({
    ...reviewFilters,
    ...callFilters,
    state: z.enum(LEASE_STATES).optional(),
  })
  .refine(sinceBeforeUntil, SINCE_BEFORE_UNTIL);
export const decisionQuery = z.strictObject({ ...reviewFilters, ...callFilters, outcome: z.enum(['permit', 'deny', 'pending']).optional() }).refine(sinceBeforeUntil, SINCE_BEFORE_UNTIL);

export const approvalQuery = z
  .strictObject({ ...reviewFilters, status: z.enum(APPROVAL_STATUSES as [ApprovalStatus, ...ApprovalStatus[]]).optional() })
  .refine(sinceBeforeUntil, SINCE_BEFORE_UNTIL);

/** POST /v1/admin/{leases|tasks}/{id}/revoke: why, for the audit log (the lease keeps its reason code). */
export const revokeBody = z.strictObject({ reason: cleanText(1024).optional() });

/** An audit cursor is the seq of the last event of the page (events are read newest seq first). */
const seqCursor = z
  .string()
  .max(64)
  .transform((value, ctx) => {
    const decoded = Buffer.from(value, 'base64url').toString('utf8');
    if (!/^[1-9]\d{0,17}$/.test(decoded)) {
      ctx.addIssue({ code: 'custom', message: 'is not a cursor this API returned' });
      return z.NEVER;
    }
    return decoded;
  });

export function encodeSeqCursor(seq: string): string {
  return Buffer.from(seq, 'utf8').toString('base64url');
}

export const auditQuery = z
  .strictObject({
    task: reviewFilters.task,
    workload: reviewFilters.workload.describe('events the workload caused, and events about its tasks'),
    kind: z.enum(AUDIT_KINDS).optional(),
    since: reviewFilters.since,
    until: reviewFilters.until,
    limit,
    cursor: seqCursor.optional(),
  })
  .refine(sinceBeforeUntil, SINCE_BEFORE_UNTIL);

/** Approve or deny: who decided is the API key; why is required. */
export const approvalDecisionBody = z.strictObject({ reason: cleanText(1024) });

export function encodeCursor(id: string): string {
  return Buffer.from(id, 'utf8').toString('base64url');
}

/** Routes that take no input still refuse input they would ignore. */
export const emptyBody = z.strictObject({});

/** PUT /v1/admin/policies/{id}: a global Cedar policy set. */
export const policyBody = z.strictObject({
  policy: policyText,
  description: cleanText(1024).nullable().default(null),
});

/** POST /v1/admin/simulate: a credential request as a workload would make it, on a task it would have. */
export const simulateBody = z.strictObject({
  workload: z.string().regex(WORKLOAD_ID, 'must be a slug [a-z0-9][a-z0-9._-]{0,62} or a SPIFFE ID'),
  task: z.strictObject({ intent, subject: cleanText(256) }),
  request: credentialBody.omit({ ttl: true }),
});

/** POST /v1/admin/{policies|boundaries}/{id}/what-if: a proposed policy and the window to replay. */
export const whatIfBody = z
  .strictObject({
    policy: policyText,
    since: z.iso.datetime({ offset: true }).optional(),
    until: z.iso.datetime({ offset: true }).optional(),
    limit: z.number().int('must be an integer').min(1, 'must be at least 1').max(100_000, 'must be at most 100000').optional(),
  })
  .refine((body) => !body.since || !body.until || Date.parse(body.since) < Date.parse(body.until), { message: 'must be before until', path: ['since'] });
