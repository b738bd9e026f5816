import { createHash } from 'node:crypto';
import { calculateJwkThumbprint, EmbeddedJWK, jwtVerify, type JWK } from 'jose';
import type { Clock } from '../clock/index.js';
import { findUnstorable } from '../db/index.js';
import { InvalidDpopProof } from '../errors/index.js';
import type { DpopProofStore } from './dpop-proof-store.js';

/** How far a proof's iat may be from our clock, either way (RFC 9449 §11.1 leaves it to us). */
export const DPOP_IAT_WINDOW_S = 60;

/** Asymmetric JWS algorithms only: a proof shows possession of a private key (RFC 9449 §4.2). */
export const DPOP_ALGORITHMS = ['ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519', 'PS256', 'PS384', 'PS512', 'RS256', 'RS384', 'RS512'];

/** JWK members that only a private (or symmetric) key has. */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

export interface DpopProof {
  /** RFC 7638 SHA-256 thumbprint of the proof's public key: what the token is bound to. */
  jkt: string;
  jti: string;
  iat: number;
}

/**
 * Checks one DPoP proof JWT (RFC 9449 §4.3) against the request it came with: typ dpop+jwt, an
 * asymmetric alg, a public key in the jwk header that verifies the signature, htm and htu naming
 * this request, iat within the window, a jti. Replay is the caller's (it needs shared storage).
 */
export async function checkDpopProof(
  proof: string,
  request: { method: string; url: string },
  now: number,
  windowS = DPOP_IAT_WINDOW_S,
): Promise<DpopProof> {
  let payload: Record<string, unknown>;
  let jwk: JWK;
  try {
    const verified = await jwtVerify(proof, EmbeddedJWK, { typ: 'dpop+jwt', algorithms: DPOP_ALGORITHMS, currentDate: new Date(now) });
    payload = verified.payload;
    jwk = verified.protectedHeader.jwk as JWK;
  } catch {
    throw new InvalidDpopProof(
      'the DPoP proof does not verify: it must be a dpop+jwt signed with an asymmetric alg by the public key in its jwk header',
    );
  }
  // The jti is recorded against replay: a NUL or a lone surrogate would reach the database as a 500.
  if (findUnstorable(payload)) throw new InvalidDpopProof('the DPoP proof holds a NUL, broken unicode or nesting deeper than 32 levels');
  if (PRIVATE_MEMBERS.some((member) => member in jwk))
    throw new InvalidDpopProof("the DPoP proof's jwk header must hold a public key only");
  if (payload.htm !== request.method) throw new InvalidDpopProof("the DPoP proof's htm does not match the request method");
  if (typeof payload.htu !== 'string' || normalise(payload.htu) !== normalise(request.url)) {
    throw new InvalidDpopProof("the DPoP proof's htu does not match the request URI");
  }
  if (typeof payload.iat !== 'number' || Math.abs(now / 1000 - payload.iat) > windowS) {
    throw new InvalidDpopProof(`the DPoP proof's iat must be within ${windowS} seconds of now`);
  }
  if (typeof payload.jti !== 'string' || payload.jti.length === 0 || payload.jti.length > 256) {
    throw new InvalidDpopProof('the DPoP proof must carry a jti of 1 to 256 characters');
  }
  return { jkt: await calculateJwkThumbprint(jwk, 'sha256'), jti: payload.jti, iat: payload.iat };
}

/** RFC 9449 §4.3: compared without query and fragment, after RFC 3986 syntax-based normalisation. */
function normalise(uri: string): string | undefined {
  try {
    const url = new URL(uri);
    url.search = '';
    url.hash = '';
    return url.href;
  } catch {
    return undefined;
  }
}

/**
 * The DPoP check at a credential endpoint: exactly one proof, valid for this request, never seen
 * before on any replica. The request URI is built from TOLLGATE_ISSUER and the route path, so a
 * proof made for the public URL verifies behind a proxy.
 */
export class DpopVerifier {
  constructor(
    private readonly issuer: string,
    private readonly proofs: DpopProofStore,
    private readonly clock: Clock,
    private readonly windowS = DPOP_IAT_WINDOW_S,
  ) {}

  async verify(headerValues: readonly string[], method: string, path: string): Promise<{ jkt: string }> {
    if (headerValues.length !== 1) throw new InvalidDpopProof('exactly one DPoP header is allowed');
    const proof = headerValues[0]!;
    if (proof.length > 8192 || !/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/.test(proof)) {
      throw new InvalidDpopProof('the DPoP header must hold one compact JWS');
    }
    const checked = await checkDpopProof(
      proof,
      { method, url: `${this.issuer}${path.split(/[?#]/, 1)[0]}` },
      this.clock.now(),
      this.windowS,
    );
    // Keyed by the proof key and the jti: another key's jti cannot collide. Kept until the iat
    // window is over; after that the iat check alone refuses the proof.
    const jtiHash = createHash('sha256').update(`${checked.jkt}.${checked.jti}`).digest('base64url');
    if (!(await this.proofs.claim(jtiHash, (checked.iat + this.windowS) * 1000))) {
      throw new InvalidDpopProof('the DPoP proof was already used');
    }
    return { jkt: checked.jkt };
  }
}
