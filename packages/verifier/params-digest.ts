import { createHash } from 'node:crypto';
import { canonicalJson } from './canonical-json.js';

/**
 * The digest a credential binds a call's arguments with: base64url(SHA-256(RFC 8785 JSON)). Absent
 * params are digested as JSON `null`, so "no arguments" is a value a token can name too.
 */
export function paramsDigest(params: unknown): string {
  return createHash('sha256')
    .update(canonicalJson(params === undefined ? null : params))
    .digest('base64url');
}
