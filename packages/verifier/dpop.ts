import { createHash } from 'node:crypto';
import { calculateJwkThumbprint, EmbeddedJWK, errors, jwtVerify, type JWK } from 'jose';
import { InvalidDpopProof } from './errors.js';

/** The asymmetric algorithms a proof may be signed with (never HS* nor none: RFC 9449 §4.3). */
export const DPOP_ALGORITHMS = ['ES256', 'EdDSA', 'ES384', 'PS256', 'RS256'] as const;

export interface DpopOptions {
  algorithms?: readonly string[];
  /** How old (and how far in the future, within leeway) a proof's `iat` may be. */
  iatWindowSeconds?: number;
  /** How many proof ids are remembered to refuse a replay. */
  replayCacheSize?: number;
}

/**
 * The proof ids seen within the iat window, to refuse a replay (RFC 9449 §11.1). Bounded in time
 * (an id is dropped once its proof would be too old anyway) and in size: when full, the oldest is
 * dropped and proofs no newer than it are refused from then on, so an evicted id cannot come back.
 */
export class ReplayCache {
  /** jti → iat (seconds), in insertion order. */
  private readonly seen = new Map<string, number>();
  /** Proofs with an iat at or below this were evicted unexpired: none is accepted any more. */
  private floor = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly maxEntries: number,
    private readonly windowSeconds: number,
  ) {}

  /** Records a proof id; false when it was seen before (or can no longer be told apart from one). */
  remember(jti: string, iat: number, nowSeconds: number): boolean {
    this.prune(nowSeconds);
    if (iat <= this.floor || this.seen.has(jti)) return false;
    if (this.seen.size >= this.maxEntries) {
      const [oldest, oldestIat] = this.seen.entries().next().value as [string, number];
      this.seen.delete(oldest);
      this.floor = Math.max(this.floor, oldestIat);
      if (iat <= this.floor) return false;
    }
    this.seen.set(jti, iat);
    return true;
  }

  get size(): number {
    return this.seen.size;
  }

  private prune(nowSeconds: number): void {
    for (const [jti, iat] of this.seen) {
      // Past the window a proof is refused for its age: its id need not be kept.
      if (iat >= nowSeconds - this.windowSeconds * 2) break;
      this.seen.delete(jti);
    }
  }
}

/** The htu a proof must name: the request's URL without query and fragment (RFC 9449 §4.3). */
export function normalizeHtu(url: string): string {
  const parsed = new URL(url);
  parsed.search = '';
  parsed.hash = '';
  return parsed.href;
}

/** What a proof is checked against: the request being served and the token it comes with. */
export interface ProofContext {
  proof: string;
  method: string;
  url: string;
  accessToken: string;
  jkt: string;
  nowSeconds: number;
  leewaySeconds: number;
}

/** Checks a DPoP proof (RFC 9449 §4.3 and §7.1); throws InvalidDpopProof with the reason. */
export async function checkProof(context: ProofContext, options: Required<DpopOptions>, replay: ReplayCache): Promise<void> {
  const fail = (why: string, cause?: unknown): never => {
    throw new InvalidDpopProof(`DPoP proof: ${why}`, { cause });
  };
  let payload: Record<string, unknown>;
  let jwk: JWK | undefined;
  try {
    const verified = await jwtVerify(context.proof, EmbeddedJWK, { typ: 'dpop+jwt', algorithms: [...options.algorithms] });
    payload = verified.payload;
    jwk = verified.protectedHeader.jwk;
  } catch (error) {
    return fail(error instanceof errors.JOSEError ? error.message : 'not a signed JWT', error);
  }
  if (!jwk || 'd' in jwk) return fail('the header must carry a public jwk');
  if (typeof payload.jti !== 'string' || payload.jti.length === 0) return fail('jti is missing');
  if (payload.htm !== context.method.toUpperCase()) return fail('htm does not match the request method');
  if (typeof payload.htu !== 'string') return fail('htu is missing');
  let htu: string;
  try {
    htu = normalizeHtu(payload.htu);
  } catch {
    return fail('htu is not a URL');
  }
  if (htu !== normalizeHtu(context.url)) return fail('htu does not match the request URL');
  if (typeof payload.iat !== 'number') return fail('iat is missing');
  if (payload.iat > context.nowSeconds + context.leewaySeconds) return fail('iat is in the future');
  if (payload.iat < context.nowSeconds - options.iatWindowSeconds) return fail('iat is too old');
  const ath = createHash('sha256').update(context.accessToken).digest('base64url');
  if (payload.ath !== ath) return fail('ath does not match the access token');
  if ((await calculateJwkThumbprint(jwk, 'sha256')) !== context.jkt) return fail("the proof's key is not the one the token is bound to");
  if (!replay.remember(payload.jti, payload.iat, context.nowSeconds)) return fail('the proof was used before');
}
