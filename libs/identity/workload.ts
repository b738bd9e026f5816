import type { JWK } from 'jose';
import type { RateLimit } from '../config/index.js';

/**
 * A registered workload: the non-human caller. It proves itself either with assertions signed by its
 * registered public keys (`jwks`), or with tokens a trusted issuer mints for `subject` (`issuerId`).
 * Exactly one of the two modes is set.
 */
export interface Workload {
  id: string;
  jwks: { keys: JWK[] } | null;
  issuerId: string | null;
  subject: string | null;
  enabled: boolean;
  /** Its own limit on credential requests; null: the service's (TOLLGATE_RATE_LIMIT, maybe off). */
  rateLimit: WorkloadRateLimit | null;
  /** Bumped on every change, so cached verifications made under old keys are not trusted. */
  revision: number;
  createdAt: Date;
  updatedAt: Date;
}

/** The intervals a workload's limit may be written in, in seconds. */
export const RATE_INTERVALS = { second: 1, minute: 60, hour: 3600 } as const;
export type RateInterval = keyof typeof RATE_INTERVALS;

/**
 * A workload's own token bucket: `requests` per `per` refill it, up to `burst` tokens. Kept as the
 * admin wrote it ("30 per minute"), so it reads back the same.
 */
export interface WorkloadRateLimit {
  requests: number;
  per: RateInterval;
  burst: number;
}

/** The bucket the rate limiter runs for a workload's own limit. */
export function tokenBucketOf(limit: WorkloadRateLimit): RateLimit {
  return { perSecond: limit.requests / RATE_INTERVALS[limit.per], burst: limit.burst };
}

/**
 * Workload ids: a short slug, or a SPIFFE ID as the SPIFFE-ID spec defines it: a trust domain of
 * [a-z0-9._-], path segments of [A-Za-z0-9._-] that are neither "." nor "..", 2048 bytes at most.
 */
export const WORKLOAD_ID =
  /^(?:[a-z0-9][a-z0-9._-]{0,62}|(?=.{1,2048}$)spiffe:\/\/[a-z0-9._-]{1,255}(?:\/(?!\.{1,2}(?:\/|$))[A-Za-z0-9._-]+)+)$/;

/** The signing algorithms a workload key may use, decided by the key, never by a token header. */
export function algorithmsFor(jwk: JWK): readonly string[] {
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') return ['EdDSA', 'Ed25519'];
  if (jwk.kty === 'EC' && jwk.crv === 'P-256') return ['ES256'];
  return [];
}

/** JWK members that carry private or symmetric key material. */
export const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;

/** How authentication finds a workload by id (the store, or the replica's short cache in front of it). */
export interface WorkloadLookup {
  find(id: string): Promise<Workload | undefined>;
}

/** What federated authentication needs besides `find`: the workload bound to an issuer's subject. */
export interface BoundWorkloadLookup {
  findBound(issuerId: string, subject: string): Promise<Workload | undefined>;
}
