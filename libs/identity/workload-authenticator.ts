import { createHash } from 'node:crypto';
import { decodeJwt, decodeProtectedHeader, importJWK, jwtVerify, type CryptoKey, type JWK } from 'jose';
import type { Clock } from '../clock/index.js';
import { findUnstorable } from '../db/index.js';
import { ExpiringMap } from '../clock/index.js';
import { InvalidClient } from '../errors/index.js';
import type { FederatedVerifier } from './federated-verifier.js';
import { describeJoseError, rejected } from './rejection.js';
import { algorithmsFor, type Workload, type WorkloadLookup } from './workload.js';

export interface AuthenticatedWorkload {
  id: string;
  /** Assertion expiry (seconds since the epoch). */
  exp: number;
}

const LEEWAY_S = 30;
const MAX_LIFETIME_S = 300;
const MAX_TOKEN_LENGTH = 8192;
/** Header members that would let a token pick its own key; a workload's keys are registered. */
const FORBIDDEN_HEADERS = ['jwk', 'jku', 'x5u', 'x5c', 'x5t', 'x5t#S256'];

interface Verified {
  workloadId: string;
  revision: number;
  exp: number;
  /** Set for a federated token: the issuer's `iss` and revision it was verified under. */
  issuer?: { iss: string; revision: number };
}

/**
 * Authenticates a workload by its bearer token, one of two kinds:
 * - an assertion signed by one of the workload's registered keys: a short-lived JWT with
 *   iss = sub = workload id, aud = Tollgate's issuer;
 * - a token of a trusted issuer (iss = the issuer, sub = the subject a workload is bound to), checked
 *   by the FederatedVerifier.
 * A token may be reused until it expires (as a JWT-SVID is); a verified one is remembered, keyed by
 * its hash with the workload's revision (and the issuer's), so reuse costs no second signature check
 * and a key change, a kill switch or a withdrawn issuer takes effect at once.
 */
export class WorkloadAuthenticator {
  private readonly verified: ExpiringMap<string, Verified>;
  private readonly importedKeys = new Map<string, CryptoKey | Uint8Array>();

  constructor(
    private readonly workloads: WorkloadLookup,
    private readonly audience: string,
    private readonly clock: Clock,
    cacheSize = 50_000,
    private readonly federation?: FederatedVerifier,
  ) {
    this.verified = new ExpiringMap(cacheSize);
  }

  async authenticate(token: string): Promise<AuthenticatedWorkload> {
    if (token.length === 0 || token.length > MAX_TOKEN_LENGTH) throw rejected('malformed workload assertion');
    const digest = createHash('sha256').update(token).digest('base64url');
    const nowS = this.clock.now() / 1000;

    const cached = this.verified.get(digest, this.clock.now());
    if (cached) {
      const workload = await this.workloads.find(cached.workloadId);
      if (workload?.enabled && workload.revision === cached.revision) {
        if (cached.issuer === undefined) return { id: workload.id, exp: cached.exp };
        if (await this.federation?.stillTrusted(cached.issuer.iss, cached.issuer.revision)) return { id: workload.id, exp: cached.exp };
      }
      this.verified.delete(digest);
    }

    const { header, claims } = decodeUnverified(token);
    // iss = sub names a workload with registered keys; anything else can only be a trusted issuer's token.
    if (typeof claims.iss === 'string' && claims.iss !== claims.sub && this.federation) {
      const { workload, issuer, exp } = await this.federation.verify(token, header, claims);
      const verified = {
        workloadId: workload.id,
        revision: workload.revision,
        exp,
        issuer: { iss: issuer.issuer, revision: issuer.revision },
      };
      this.verified.set(digest, verified, (exp + LEEWAY_S) * 1000, this.clock.now());
      return { id: workload.id, exp };
    }
    for (const name of FORBIDDEN_HEADERS) {
      if (name in header) throw rejected(`the assertion header may not carry "${name}"`);
    }
    if (typeof claims.iss !== 'string' || claims.iss !== claims.sub) throw rejected('iss and sub must both name the workload');

    const workload = await this.workloads.find(claims.iss);
    if (!workload || !workload.enabled) throw rejected('unknown or disabled workload');
    if (!workload.jwks) throw rejected('the workload authenticates through its trusted issuer, not with registered keys');

    const candidates = workload.jwks.keys.filter(
      (jwk) => (header.kid === undefined || jwk.kid === header.kid) && algorithmsFor(jwk).includes(String(header.alg)),
    );
    if (candidates.length === 0) throw rejected('no registered key of the workload matches the assertion');

    let lastError: unknown;
    for (const jwk of candidates) {
      try {
        const { payload } = await jwtVerify(token, await this.importKey(workload, jwk, String(header.alg)), {
          algorithms: [String(header.alg)],
          issuer: workload.id,
          subject: workload.id,
          audience: this.audience,
          clockTolerance: LEEWAY_S,
          requiredClaims: ['exp', 'iat'],
          currentDate: new Date(this.clock.now()),
        });
        const iat = payload.iat!;
        const exp = payload.exp!;
        if (iat > nowS + LEEWAY_S) throw rejected('the assertion was issued in the future');
        if (exp - iat > MAX_LIFETIME_S) throw rejected(`the assertion may live at most ${MAX_LIFETIME_S} seconds`);
        this.verified.set(digest, { workloadId: workload.id, revision: workload.revision, exp }, (exp + LEEWAY_S) * 1000, this.clock.now());
        return { id: workload.id, exp };
      } catch (error) {
        if (error instanceof InvalidClient) throw error;
        lastError = error;
      }
    }
    throw rejected(describeJoseError(lastError));
  }

  private async importKey(workload: Workload, jwk: JWK, alg: string): Promise<CryptoKey | Uint8Array> {
    const id = `${workload.id}\u0000${workload.revision}\u0000${jwk.kid ?? ''}\u0000${jwk.x ?? ''}\u0000${alg}`;
    let key = this.importedKeys.get(id);
    if (!key) {
      key = await importJWK({ ...jwk, alg: undefined }, alg);
      if (this.importedKeys.size >= 1000) this.importedKeys.clear();
      this.importedKeys.set(id, key);
    }
    return key;
  }
}

function decodeUnverified(token: string): { header: ReturnType<typeof decodeProtectedHeader>; claims: ReturnType<typeof decodeJwt> } {
  let decoded;
  try {
    decoded = { header: decodeProtectedHeader(token), claims: decodeJwt(token) };
  } catch {
    throw rejected('malformed workload assertion');
  }
  // Claims name rows (iss, sub): a NUL or a lone surrogate would reach the database as a 500.
  if (findUnstorable(decoded.header) || findUnstorable(decoded.claims))
    throw rejected('the assertion holds a NUL, broken unicode or nesting deeper than 32 levels');
  return decoded;
}
