import { createHash } from 'node:crypto';

/** STS refuses a session policy whose plaintext is longer (the packed size is STS's to judge). */
export const SESSION_POLICY_MAX_CHARS = 2048;
/** STS's floor and ceiling for DurationSeconds on AssumeRole. */
export const MIN_SESSION_SECONDS = 900;
export const MAX_SESSION_SECONDS = 43_200;
export const TAG_VALUE_MAX = 256;

/** The session tags every Tollgate session carries; the revocation deny matches on the first. */
export const LEASE_TAG = 'tollgate-lease';
export const TASK_TAG = 'tollgate-task';
export const INTENT_TAG = 'tollgate-intent';

/** What one AssumeRole call asks STS for: plain data, no SDK types. */
export interface SessionRequest {
  roleArn: string;
  roleSessionName: string;
  durationSeconds: number;
  sourceIdentity: string;
  tags: { key: string; value: string }[];
  policy: string;
  externalId?: string | undefined;
}

export interface SessionInput {
  roleArn: string;
  sessionPolicy: unknown;
  externalId?: string | undefined;
  lease: { id: string; issuedAt: number; expiresAt: number; resource: string | null };
  task: { id: string; intent: string; subject: string };
  workloadId: string;
}

/** Builds the AssumeRole request for one lease. Pure: every rule of STS's input is applied here. */
export function buildSessionRequest(input: SessionInput): SessionRequest {
  const policy = renderSessionPolicy(input.sessionPolicy, {
    resource: input.lease.resource ?? '',
    taskId: input.task.id,
    subject: input.task.subject,
  });
  if (policy.length > SESSION_POLICY_MAX_CHARS) {
    throw new SessionPolicyTooLarge(policy.length);
  }
  return {
    roleArn: input.roleArn,
    roleSessionName: stsName(`tg-${input.lease.id}`),
    durationSeconds: sessionSeconds(input.lease.issuedAt, input.lease.expiresAt),
    sourceIdentity: stsName(input.workloadId),
    tags: [
      { key: LEASE_TAG, value: tagValue(input.lease.id) },
      { key: TASK_TAG, value: tagValue(input.task.id) },
      { key: INTENT_TAG, value: tagValue(input.task.intent) },
    ],
    policy,
    ...(input.externalId === undefined ? {} : { externalId: input.externalId }),
  };
}

/** The session outlives Tollgate's lease when the lease is shorter than STS's 900 s floor: revocation covers the rest. */
export function sessionSeconds(issuedAt: number, expiresAt: number): number {
  const ttl = Math.ceil((expiresAt - issuedAt) / 1000);
  return Math.min(MAX_SESSION_SECONDS, Math.max(MIN_SESSION_SECONDS, ttl));
}

/**
 * A RoleSessionName or SourceIdentity: `[\w+=,.@-]`, 2 to 64 characters. Other characters become
 * `_`; a longer value keeps its head and a hash of the whole, so two long workload ids stay apart.
 */
export function stsName(value: string): string {
  let name = value.replace(/[^\w+=,.@-]/g, '_');
  if (name.length > 64) name = `${name.slice(0, 55)}-${createHash('sha256').update(value).digest('hex').slice(0, 8)}`;
  while (name.length < 2) name += '_';
  return name;
}

/** A session tag value: letters, digits, spaces and `_.:/=+-@`, at most 256 characters. */
export function tagValue(value: string): string {
  const cleaned = value.replace(/[^\p{L}\p{Z}\p{N}_.:/=+\-@]/gu, '_');
  return [...cleaned].slice(0, TAG_VALUE_MAX).join('');
}

/**
 * The session policy for one request. The template is a parsed JSON value and the values replace
 * placeholders inside its strings, then the whole is serialised: a value can never close a string
 * or add a statement, whatever it holds. IAM reads `${...}`, `*` and `?` inside Resource and
 * Condition strings as policy variables and wildcards, so those characters of a value are written
 * as IAM's own escapes (`${$}`, `${*}`, `${?}`): a resource of `*` names the object `*`, not all of
 * them. Characters beyond Latin-1 become \u escapes (STS takes \u0020-\u00FF, tab, LF and CR).
 */
export function renderSessionPolicy(template: unknown, values: { resource: string; taskId: string; subject: string }): string {
  const replacements: Record<string, string> = {
    '${resource}': iamLiteral(values.resource),
    '${task_id}': iamLiteral(values.taskId),
    '${subject}': iamLiteral(values.subject),
  };
  const substitute = (node: unknown): unknown => {
    if (typeof node === 'string') return node.replace(/\$\{(?:resource|task_id|subject)\}/g, (placeholder) => replacements[placeholder]!);
    if (Array.isArray(node)) return node.map(substitute);
    if (node !== null && typeof node === 'object') {
      return Object.fromEntries(Object.entries(node).map(([key, value]) => [key, substitute(value)]));
    }
    return node;
  };
  return JSON.stringify(substitute(template)).replace(/[\u0100-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** A value as IAM reads it literally inside a policy string. */
export function iamLiteral(value: string): string {
  return value.replace(/[$*?]/g, (c) => `\${${c}}`);
}

/** The rendered policy is longer than STS accepts: the request cannot be served under this boundary. */
export class SessionPolicyTooLarge extends Error {
  constructor(readonly length: number) {
    super(`the session policy renders to ${length} characters; STS accepts at most ${SESSION_POLICY_MAX_CHARS}`);
    this.name = 'SessionPolicyTooLarge';
  }
}
