import { createHash } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK, type KeyObject } from 'jose';

/** A DPoP key pair (RFC 9449). The public JWK travels in every proof's header. */
export interface DpopKey {
  privateKey: CryptoKey | KeyObject | JWK;
  publicJwk: JWK;
  /** Defaults from the key: EdDSA for an Ed25519 (OKP) key, ES256 for a P-256 (EC) key. */
  alg?: 'EdDSA' | 'ES256';
}

/** Public members only: a proof must never carry private key material, whatever the caller passed. */
const PUBLIC_MEMBERS = ['kty', 'crv', 'x', 'y', 'e', 'n'] as const;

/** A fresh key pair whose private half cannot be exported. */
export async function generateDpopKey(alg: 'EdDSA' | 'ES256' = 'ES256'): Promise<DpopKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg);
  return { privateKey, publicJwk: await exportJWK(publicKey), alg };
}

/**
 * Builds DPoP proofs: header `typ: dpop+jwt` with the public `jwk`; claims `htm`, `htu` (the target
 * URI without query and fragment), `iat`, a unique `jti`, the server's `nonce` when it asked for one,
 * and `ath` (hash of the access token) when the proof goes to a resource server with the token.
 */
export class DpopProver {
  readonly alg: 'EdDSA' | 'ES256';
  private readonly publicJwk: JWK;

  constructor(
    private readonly key: DpopKey,
    private readonly now: () => number = Date.now,
  ) {
    const jwk: JWK = {};
    for (const member of PUBLIC_MEMBERS) if (key.publicJwk[member] !== undefined) jwk[member] = key.publicJwk[member];
    this.publicJwk = jwk;
    const alg =
      key.alg ?? (jwk.kty === 'OKP' && jwk.crv === 'Ed25519' ? 'EdDSA' : jwk.kty === 'EC' && jwk.crv === 'P-256' ? 'ES256' : undefined);
    if (!alg) throw new TypeError('dpop.publicJwk: only Ed25519 (OKP) and P-256 (EC) keys are supported');
    this.alg = alg;
  }

  async proof(method: string, url: string, options: { nonce?: string; accessToken?: string } = {}): Promise<string> {
    const claims: Record<string, string> = { htm: method.toUpperCase(), htu: htu(url) };
    if (options.nonce !== undefined) claims.nonce = options.nonce;
    if (options.accessToken !== undefined) claims.ath = createHash('sha256').update(options.accessToken).digest('base64url');
    return new SignJWT(claims)
      .setProtectedHeader({ alg: this.alg, typ: 'dpop+jwt', jwk: this.publicJwk })
      .setIssuedAt(Math.floor(this.now() / 1000))
      .setJti(crypto.randomUUID())
      .sign(this.key.privateKey);
  }
}

/** RFC 9449 §4.2: the HTTP target URI without query and fragment. */
export function htu(url: string): string {
  const parsed = new URL(url);
  parsed.search = '';
  parsed.hash = '';
  return parsed.toString();
}
