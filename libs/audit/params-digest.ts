import { createHash } from 'node:crypto';
import { canonicalJson } from './canonical-json.js';

/**
 * SHA-256 of a tool call's params as canonical JSON (RFC 8785, the audit chain's one function),
 * base64url: key order does not matter, anything else does. Absent params are digested as `null`.
 * One function for every place that binds params (an approval, the credential's `params_digest`,
 * introspection), so a tool can compare what it serves with what was approved and issued.
 */
export function paramsDigest(params: Record<string, unknown> | null | undefined): string {
  return canonicalParams(params).digest;
}

/** A call's params serialized once (on the hot path): their digest, and the canonical form's size. */
export interface CanonicalParams {
  digest: string;
  bytes: number;
}

export function canonicalParams(params: Record<string, unknown> | null | undefined): CanonicalParams {
  const text = canonicalJson(params ?? null);
  return { digest: createHash('sha256').update(text, 'utf8').digest('base64url'), bytes: Buffer.byteLength(text, 'utf8') };
}
