import { createHash } from 'node:crypto';
import { createLocalJWKSet, jwtVerify, type JWK, type JWTPayload } from 'jose';
import { ExpiringMap } from '../../clock/expiring-map.js';

/**
 * Verifies a token Tollgate issued: our signature, our issuer, typ at+jwt. Expiry is not judged
 * here; the lease row decides whether the token is still good. Resource servers introspect the same
 * token many times, so a verified token's claims are remembered (by the token's hash) until it
 * expires: what the signature proved cannot change, only the lease can.
 */
export function issuedTokenVerifier(
  issuer: string,
  publicJwks: () => JWK[],
  now: () => number = Date.now,
  cacheSize = 50_000,
): (token: string) => Promise<JWTPayload | undefined> {
  let cachedFor: JWK[] | undefined;
  let keySet: ReturnType<typeof createLocalJWKSet> | undefined;
  const verified = new ExpiringMap<string, JWTPayload>(cacheSize);
  return async (token) => {
    const jwks = publicJwks();
    if (jwks !== cachedFor || !keySet) {
      // New key set: what the old one verified is not trusted any more.
      keySet = createLocalJWKSet({ keys: jwks });
      cachedFor = jwks;
      verified.clear();
    }
    const digest = createHash('sha256').update(token).digest('base64url');
    const known = verified.get(digest, now());
    if (known) return known;
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, keySet, {
        issuer,
        typ: 'at+jwt',
        algorithms: ['EdDSA', 'ES256'],
        // Expiry is decided by the lease; accept an old token so we can say "inactive" for the right reason.
        clockTolerance: Number.MAX_SAFE_INTEGER,
      }));
    } catch {
      return undefined;
    }
    if (typeof payload.exp === 'number') verified.set(digest, payload, payload.exp * 1000, now());
    return payload;
  };
}
