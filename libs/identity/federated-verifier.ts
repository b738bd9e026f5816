import {
  createLocalJWKSet,
  createRemoteJWKSet,
  errors,
  jwtVerify,
  type CryptoKey,
  type JWTPayload,
  type JWTVerifyGetKey,
  type JWTVerifyOptions,
  type ProtectedHeaderParameters,
} from 'jose';
import type { Clock } from '../clock/index.js';
import { TemporarilyUnavailable } from '../errors/index.js';
import {
  ASYMMETRIC_ALGORITHMS,
  humanClaim,
  kubernetesClaimProblem,
  MAX_FEDERATED_LIFETIME_S,
  subjectProblem,
  type Issuer,
} from './issuer.js';
import type { IssuerLookup } from './issuer-cache.js';
import { describeJoseError, rejected } from './rejection.js';
import type { BoundWorkloadLookup, Workload } from './workload.js';

export interface JwksFetchOptions {
  /** After a fetch, an unknown kid waits this long before it may cause another (jose cooldownDuration). */
  cooldownMs: number;
  /** A JWKS fetch slower than this fails (jose timeoutDuration). */
  timeoutMs: number;
  /** Fetched keys are used this long before they are fetched again (jose cacheMaxAge). */
  cacheMaxAgeMs: number;
}

export const DEFAULT_JWKS_FETCH: JwksFetchOptions = { cooldownMs: 30_000, timeoutMs: 3_000, cacheMaxAgeMs: 600_000 };

const LEEWAY_S = 30;
/**
 * Header members that would let a token choose its own key: its keys are the issuer's, found by kid.
 * (x5t, a thumbprint, is not a key source; Azure AD and others put it in every header.)
 */
const FORBIDDEN_HEADERS = ['jwk', 'jku', 'x5u', 'x5c'];

export interface FederatedIdentity {
  workload: Workload;
  issuer: Issuer;
  exp: number;
}

/** Raised inside a key resolver when the issuer's keys could not be had; becomes a 503, never a 401. */
class KeysUnavailable extends Error {}

/**
 * Verifies tokens minted by trusted issuers (SPIFFE JWT-SVIDs, Kubernetes service-account tokens,
 * OIDC ID tokens of workloads) for the workloads bound to them. Holds one key set per issuer on this
 * replica, built again when the issuer's revision changes.
 */
export class FederatedVerifier {
  private readonly keySets = new Map<string, { revision: number; getKey: JWTVerifyGetKey }>();

  constructor(
    private readonly issuers: IssuerLookup,
    private readonly workloads: BoundWorkloadLookup,
    private readonly clock: Clock,
    private readonly fetch: JwksFetchOptions = DEFAULT_JWKS_FETCH,
  ) {}

  /** True while the issuer a cached verification was made under still stands at the same revision. */
  async stillTrusted(iss: string, revision: number): Promise<boolean> {
    const issuer = await this.issuers.findByIssuer(iss);
    return issuer !== undefined && issuer.enabled && issuer.revision === revision;
  }

  /**
   * Every rule that can be checked without a key comes first (trusted issuer, subject shape, no human
   * claims, Kubernetes claims agree, bound and enabled workload, asymmetric alg), so a token that
   * fails them costs no key fetch. Then the signature and the time claims.
   */
  async verify(token: string, header: ProtectedHeaderParameters, claims: JWTPayload): Promise<FederatedIdentity> {
    for (const name of FORBIDDEN_HEADERS) {
      if (name in header) throw rejected(`the token header may not carry "${name}"`);
    }
    if (typeof claims.iss !== 'string') throw rejected('iss is required');
    const issuer = await this.issuers.findByIssuer(claims.iss);
    if (!issuer || !issuer.enabled) throw rejected('the token is not from a trusted issuer');
    if (typeof claims.sub !== 'string' || claims.sub.length === 0) throw rejected('sub is required');
    const human = humanClaim(issuer.kind, claims);
    if (human !== undefined) throw rejected(`a token carrying "${human}" is an end-user ID token, not a workload's`);
    const subject = subjectProblem(issuer, claims.sub);
    if (subject !== undefined) throw rejected(`sub ${subject}`);
    if (issuer.kind === 'kubernetes') {
      const problem = kubernetesClaimProblem(claims);
      if (problem !== undefined) throw rejected(problem);
    }
    if (!(ASYMMETRIC_ALGORITHMS as readonly string[]).includes(String(header.alg))) {
      throw rejected('the token must be signed with an asymmetric algorithm (RS, PS, ES or EdDSA)');
    }
    const workload = await this.workloads.findBound(issuer.id, claims.sub);
    if (!workload || !workload.enabled) throw rejected('no enabled workload is bound to this issuer and subject');

    const nowS = this.clock.now() / 1000;
    const options: JWTVerifyOptions = {
      algorithms: [...ASYMMETRIC_ALGORITHMS],
      issuer: issuer.issuer,
      subject: claims.sub,
      audience: issuer.audiences,
      clockTolerance: LEEWAY_S,
      requiredClaims: ['exp'],
      currentDate: new Date(this.clock.now()),
    };
    let payload: JWTPayload;
    try {
      payload = await verifyWithAnyKey(token, this.keysFor(issuer), options);
    } catch (error) {
      if (error instanceof KeysUnavailable)
        throw new TemporarilyUnavailable(`the keys of issuer "${issuer.id}" cannot be fetched; try again shortly`);
      throw rejected(describeJoseError(error));
    }
    const exp = payload.exp!;
    if (payload.iat !== undefined && payload.iat > nowS + LEEWAY_S) throw rejected('the token was issued in the future');
    if (exp - (payload.iat ?? nowS) > MAX_FEDERATED_LIFETIME_S) {
      throw rejected(`a federated token may live at most ${MAX_FEDERATED_LIFETIME_S} seconds`);
    }
    return { workload, issuer, exp };
  }

  private keysFor(issuer: Issuer): JWTVerifyGetKey {
    const held = this.keySets.get(issuer.id);
    if (held?.revision === issuer.revision) return held.getKey;
    const getKey =
      issuer.jwksUri !== null ? remoteKeys(new URL(issuer.jwksUri), this.fetch) : createLocalJWKSet(issuer.jwks ?? { keys: [] });
    this.keySets.set(issuer.id, { revision: issuer.revision, getKey });
    return getKey;
  }
}

/** jwtVerify, trying each key when several of the issuer's keys match the header (jose leaves that to us). */
async function verifyWithAnyKey(token: string, getKey: JWTVerifyGetKey, options: JWTVerifyOptions): Promise<JWTPayload> {
  try {
    return (await jwtVerify(token, getKey, options)).payload;
  } catch (error) {
    if (!(error instanceof errors.JWKSMultipleMatchingKeys)) throw error;
    let last: unknown = error;
    for await (const key of error as unknown as AsyncIterable<CryptoKey>) {
      try {
        return (await jwtVerify(token, key, options)).payload;
      } catch (inner) {
        if (!(inner instanceof errors.JWSSignatureVerificationFailed)) throw inner;
        last = inner;
      }
    }
    throw last;
  }
}

/**
 * The issuer's JWKS over HTTP through jose's remote set (cache, one refetch per cooldown for an unknown
 * kid, timeout, no redirects). Anything but "no such key" from the resolver means the keys could not
 * be had: that fails closed as KeysUnavailable, and for a while afterwards (the cooldown, at most 5 s)
 * a request that would need the network fails at once instead of fetching, so a dead issuer under
 * load is asked once per interval, not once per request.
 */
function remoteKeys(url: URL, options: JwksFetchOptions): JWTVerifyGetKey {
  const set = createRemoteJWKSet(url, {
    cooldownDuration: options.cooldownMs,
    timeoutDuration: options.timeoutMs,
    cacheMaxAge: options.cacheMaxAgeMs,
  });
  let failedAt = Number.NEGATIVE_INFINITY;
  // Short enough that one lost fetch does not shut an issuer out for a whole cooldown.
  const retryAfterFailureMs = Math.min(options.cooldownMs, 5_000);
  return async (header, token) => {
    const known = set.jwks()?.keys.some((key) => header.kid === undefined || key.kid === header.kid) ?? false;
    const wouldFetch = !set.fresh || (!known && !set.coolingDown);
    // jose's remote set times its cache with Date.now(), so this guard does too.
    if (wouldFetch && Date.now() - failedAt < retryAfterFailureMs) throw new KeysUnavailable();
    try {
      return await set(header, token);
    } catch (error) {
      if (
        error instanceof errors.JWKSNoMatchingKey ||
        error instanceof errors.JWKSMultipleMatchingKeys ||
        error instanceof errors.JOSENotSupported
      )
        throw error;
      failedAt = Date.now();
      throw new KeysUnavailable();
    }
  };
}
