import { SignJWT, type CryptoKey, type JWK, type KeyObject } from 'jose';

/** A key registered for the workload (`PUT /v1/admin/workloads/{id}`); the SDK signs its own assertions. */
export interface RegisteredKey {
  workloadId: string;
  /** The private key: a WebCrypto `CryptoKey`, a Node `KeyObject`, or a private JWK. */
  privateKey: CryptoKey | KeyObject | JWK;
  kid: string;
  alg: 'EdDSA' | 'ES256';
  /** Lifetime of each assertion in seconds (default 120; the broker accepts at most 300). */
  lifetime?: number;
}

/**
 * Returns the current workload JWT (a SPIFFE JWT-SVID, a Kubernetes service-account token read from
 * its projected file, ...). Called before every request, so a rotated token is picked up at once;
 * cache inside the function if fetching is expensive.
 */
export type TokenFunction = () => string | Promise<string>;

export type TokenSource = RegisteredKey | TokenFunction;

/** Re-mint this long before expiry, so an assertion never expires in flight or under small clock skew. */
const REFRESH_MARGIN_S = 30;
export const MAX_ASSERTION_LIFETIME_S = 300;

/**
 * Mints workload assertions (iss = sub = workload id, aud = Tollgate's issuer, iat, exp, jti) and
 * reuses each until it is close to expiry: the broker remembers a verified assertion, so reuse spares
 * it a signature check per request.
 */
export class AssertionMinter {
  private current: { token: string; exp: number; audience: string } | undefined;
  private pending: Promise<string> | undefined;
  private readonly lifetime: number;

  constructor(
    private readonly key: RegisteredKey,
    private readonly now: () => number = Date.now,
  ) {
    if (typeof key.workloadId !== 'string' || key.workloadId.length === 0)
      throw new TypeError('tokenSource.workloadId: a workload id is required');
    if (typeof key.kid !== 'string' || key.kid.length === 0) throw new TypeError('tokenSource.kid: the registered key id is required');
    if (key.alg !== 'EdDSA' && key.alg !== 'ES256') throw new TypeError('tokenSource.alg: must be "EdDSA" or "ES256"');
    this.lifetime = key.lifetime ?? 120;
    if (!Number.isInteger(this.lifetime) || this.lifetime <= REFRESH_MARGIN_S || this.lifetime > MAX_ASSERTION_LIFETIME_S) {
      throw new TypeError(`tokenSource.lifetime: must be an integer from ${REFRESH_MARGIN_S + 1} to ${MAX_ASSERTION_LIFETIME_S} seconds`);
    }
  }

  async token(audience: string): Promise<string> {
    const nowS = Math.floor(this.now() / 1000);
    const current = this.current;
    if (current && current.audience === audience && current.exp - REFRESH_MARGIN_S > nowS) return current.token;
    // Concurrent callers share one signature rather than each minting their own.
    this.pending ??= this.mint(audience, nowS).finally(() => (this.pending = undefined));
    return this.pending;
  }

  private async mint(audience: string, nowS: number): Promise<string> {
    const exp = nowS + this.lifetime;
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: this.key.alg, kid: this.key.kid, typ: 'JWT' })
      .setIssuer(this.key.workloadId)
      .setSubject(this.key.workloadId)
      .setAudience(audience)
      .setIssuedAt(nowS)
      .setExpirationTime(exp)
      .setJti(crypto.randomUUID())
      .sign(this.key.privateKey);
    this.current = { token, exp, audience };
    return token;
  }
}
