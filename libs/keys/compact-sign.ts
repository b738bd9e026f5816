import { sign, type KeyObject } from 'node:crypto';
import { inSpanSync } from '../tracing/index.js';

/**
 * Signs a JWS in compact serialization, EdDSA (Ed25519) or ES256 (P-256, SHA-256), in one
 * synchronous call. Why not jose: jose signs through WebCrypto's asynchronous job queue, measured
 * here at ~180 µs of CPU per token against ~65 µs for node:crypto's one-shot Ed25519 sign, and
 * minting is on every credential request. Only our own fixed header is ever signed here; every
 * verification, ours and the tests', stays with jose. Traced as `tollgate.sign` (alg and kid only).
 */
export function signCompact(
  header: { alg: 'EdDSA' | 'ES256'; typ: string; kid: string },
  payload: Record<string, unknown>,
  key: KeyObject,
): string {
  return inSpanSync(
    'tollgate.sign',
    { 'tollgate.sign.alg': header.alg, 'tollgate.sign.kid': header.kid, 'tollgate.sign.typ': header.typ },
    () => signWith(header, payload, key),
    {
      childOnly: true,
    },
  );
}

function signWith(header: { alg: 'EdDSA' | 'ES256'; typ: string; kid: string }, payload: Record<string, unknown>, key: KeyObject): string {
  const signingInput = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(payload))}`;
  const data = Buffer.from(signingInput, 'ascii');
  let signature: Buffer;
  if (header.alg === 'EdDSA') {
    if (key.asymmetricKeyType !== 'ed25519') throw new TypeError('an Ed25519 private key is required');
    signature = sign(null, data, key);
  } else {
    if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1')
      throw new TypeError('a P-256 private key is required');
    // JWS wants r || s (RFC 7518 §3.4), not node's default DER encoding.
    signature = sign('sha256', data, { key, dsaEncoding: 'ieee-p1363' });
  }
  return `${signingInput}.${signature.toString('base64url')}`;
}

function base64url(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64url');
}
