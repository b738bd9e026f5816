import type { JWK } from 'jose';

export type IssuerKind = 'spiffe' | 'kubernetes' | 'oidc';

/**
 * A trusted issuer: an identity provider (SPIRE, a Kubernetes service-account issuer, any OIDC
 * issuer) whose JWTs authenticate the workloads bound to it by subject.
 */
export interface Issuer extends IssuerDefinition {
  id: string;
  /** False once DELETE withdrew the trust; its workloads were revoked with it. */
  enabled: boolean;
  /** Bumped on every change, so cached verifications and key sets made under the old row are dropped. */
  revision: number;
  createdAt: Date;
  updatedAt: Date;
}

/** What an admin says about an issuer (PUT /v1/admin/issuers/{id}). */
export interface IssuerDefinition {
  /** The exact `iss` its tokens carry. */
  issuer: string;
  kind: IssuerKind;
  /** SPIFFE trust domain (spiffe issuers only): bound subjects and token `sub`s must lie in it. */
  trustDomain: string | null;
  /** Exactly one of jwksUri and jwks is set. */
  jwksUri: string | null;
  jwks: { keys: JWK[] } | null;
  /** A token's `aud` must contain one of these. */
  audiences: string[];
}

/**
 * Signature algorithms a federated token may use: asymmetric only, so no shared secret (and no
 * public key misused as an HMAC secret) can ever verify one.
 */
export const ASYMMETRIC_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
] as const;

/**
 * Longest lifetime (exp - iat) accepted from a federated token. Kubernetes projected tokens default
 * to 1 h (operators may raise expirationSeconds), SPIRE JWT-SVIDs to 5 min, cloud workload ID tokens
 * to 1 h; a day leaves room for those settings while refusing what is really a long-lived secret:
 * the one-year "extended" service-account tokens and exp-less legacy ones.
 */
export const MAX_FEDERATED_LIFETIME_S = 86_400;

/** SPIFFE trust domain name: lowercase letters, digits, dots, dashes and underscores. */
export const TRUST_DOMAIN = /^[a-z0-9._-]{1,255}$/;

/** A Kubernetes service-account username: system:serviceaccount:<namespace>:<name>. */
export const KUBERNETES_SUBJECT = /^system:serviceaccount:([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?):([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?)$/;

/** SPIFFE ID path rules (segments of [A-Za-z0-9._-], neither "." nor ".."), 2048 bytes at most. */
const SPIFFE_PATH = /^(?:\/(?!\.{1,2}(?:\/|$))[A-Za-z0-9._-]+)+$/;

/** True when `subject` is a SPIFFE ID with a path in `trustDomain`. */
export function isSpiffeIdIn(subject: string, trustDomain: string): boolean {
  const prefix = `spiffe://${trustDomain}`;
  return subject.length <= 2048 && subject.startsWith(prefix) && SPIFFE_PATH.test(subject.slice(prefix.length));
}

/** Why `subject` cannot be bound to (or authenticate through) `issuer`, or undefined when it can. */
export function subjectProblem(issuer: Pick<Issuer, 'kind' | 'trustDomain'>, subject: string): string | undefined {
  if (issuer.kind === 'spiffe' && !isSpiffeIdIn(subject, issuer.trustDomain ?? '')) {
    return `must be a SPIFFE ID in the trust domain ${issuer.trustDomain} (spiffe://${issuer.trustDomain}/...)`;
  }
  if (issuer.kind === 'kubernetes' && !KUBERNETES_SUBJECT.test(subject)) {
    return 'must be a Kubernetes service account: system:serviceaccount:<namespace>:<name>';
  }
  return undefined;
}

/**
 * Claims only an interactive end-user login puts in a token (OIDC Core §2, §3.1.3.6): a token that
 * carries one is a human's ID token, whatever its subject, and never authenticates a workload.
 */
export const LOGIN_CLAIMS = ['nonce', 'auth_time', 'at_hash', 'c_hash', 'acr', 'amr', 'sid'] as const;

/**
 * Profile claims (OIDC Core §5.1). SPIRE and Kubernetes never issue them, so from those issuers they
 * mark a human's token. An `oidc` issuer may carry them for a workload (Google service-account ID
 * tokens carry `email`), so there they are accepted, but only for a subject an admin bound to a workload.
 */
export const PROFILE_CLAIMS = [
  'email',
  'email_verified',
  'name',
  'given_name',
  'family_name',
  'preferred_username',
  'phone_number',
  'picture',
  'profile',
] as const;

/** The first claim that marks `claims` as a human's ID token for an issuer of `kind`, if any. */
export function humanClaim(kind: IssuerKind, claims: Record<string, unknown>): string | undefined {
  const found = LOGIN_CLAIMS.find((name) => name in claims);
  if (found !== undefined || kind === 'oidc') return found;
  return PROFILE_CLAIMS.find((name) => name in claims);
}

/**
 * Kubernetes service-account tokens name the account twice: in `sub` and in the `kubernetes.io`
 * claim. Both must agree, or the token is not what it seems.
 */
export function kubernetesClaimProblem(claims: Record<string, unknown>): string | undefined {
  const k8s = claims['kubernetes.io'];
  if (typeof k8s !== 'object' || k8s === null || Array.isArray(k8s)) return 'the "kubernetes.io" claim is missing';
  const { namespace, serviceaccount } = k8s as { namespace?: unknown; serviceaccount?: unknown };
  const name = typeof serviceaccount === 'object' && serviceaccount !== null ? (serviceaccount as { name?: unknown }).name : undefined;
  if (typeof namespace !== 'string' || typeof name !== 'string')
    return 'the "kubernetes.io" claim must name namespace and serviceaccount.name';
  // Compared part by part, so a ":" inside a claim cannot shift where the namespace ends.
  const match = typeof claims.sub === 'string' ? KUBERNETES_SUBJECT.exec(claims.sub) : null;
  if (!match || match[1] !== namespace || match[3] !== name) return 'the "kubernetes.io" claim does not agree with sub';
  return undefined;
}
