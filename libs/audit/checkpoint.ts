import { signCompact } from '../keys/index.js';
import type { SigningKey } from '../keys/index.js';

/**
 * The JWS `typ` of a checkpoint (RFC 8725 §3.11 explicit typing): a checkpoint can never pass for an
 * access token (`at+jwt`), nor one for a checkpoint.
 */
export const CHECKPOINT_TYP = 'tollgate-audit-checkpoint+jwt';

export interface Checkpoint {
  /** Compact JWS over {iss, seq, hash, iat}, signed with the current signing key (kid in its header). */
  checkpoint: string;
  seq: string;
  hash: string;
  issuedAt: number;
}

/**
 * A signed statement "the chain's head was (seq, hash) at iat". Whoever keeps one can later prove
 * that history up to that event was not rewritten: a rewritten chain no longer reaches that hash.
 */
export function signCheckpoint(key: SigningKey, issuer: string, head: { seq: string; hash: string }, nowMs: number): Checkpoint {
  const iat = Math.floor(nowMs / 1000);
  const checkpoint = signCompact(
    { alg: key.alg, typ: CHECKPOINT_TYP, kid: key.kid },
    { iss: issuer, seq: head.seq, hash: head.hash, iat },
    key.privateKeyObject,
  );
  return { checkpoint, seq: head.seq, hash: head.hash, issuedAt: iat * 1000 };
}
