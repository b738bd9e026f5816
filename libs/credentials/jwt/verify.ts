import { createHash } from 'node:crypto';
import { createLocalJWKSet, errors, jwtVerify, type JWK, type JWTPayload } from 'jose';
import { ExpiringMap } from '../../clock/index.js';

/**
 * Verifies a token Tollgate issued: our signature, our issuer, typ at+jwt. Expiry is not judged
 * here; the lease row decides whether the token is still good. Resource servers introspect the same
 * token many times, so a verified token's claims are remembered (by the token's hash) until it
 * expires: what the signature proved cannot change, only the lease can.
 *
 * A token naming a kid we do not publish may come from another replica that rotated since this one
 * last read its keys: `unknownKid` re-reads them (rate-limited by its owner) and says whether the
 * key set changed, and the token is verified once more.
 */
export function issuedTokenVerifier(
  issuer: string,
  publicJwks: () => JWK[],
  now: () => number = Date.now,
  cacheSize = 50_000,
  unknownKid: () => Promise<boolean> = async () => false,
): (token: string) => Promise<JWTPayload | undefined> {
  let cachedFor: JWK[] | undefined;
  let kids = new Set<string | undefined>();
  let keySet: ReturnType<typeof createLocalJWKSet> | undefined;
  const verified = new ExpiringMap<string, JWTPayload>(cacheSize);

  const currentKeySet = () => {
    const jwks = publicJwks();
    if (jwks !== cachedFor || !keySet) {
      // A key was withdrawn: what it verified is not trusted any more. Keys only added (a rotation
      // publishing its next key) leave every remembered verification standing.
      const next = new Set(jwks.map((jwk) => jwk.kid));
      if ([...kids].some((kid) => !next.has(kid))) verified.clear();
      keySet = createLocalJWKSet({ keys: jwks });
      cachedFor = jwks;
      kids = next;
    }
    return keySet;
  };

  const verify = async (token: string): Promise<JWTPayload> => {
    const { payload } = await jwtVerify(token, currentKeySet(), {
      issuer,
      typ: 'at+jwt',
      algorithms: ['EdDSA', 'ES256'],
      // Expiry is decided by the lease; accept an old token so we can say "inactive" for the right reason.
      clockTolerance: Number.MAX_SAFE_INTEGER,
    });
    return payload;
  };

  return async (token) => {
    currentKeySet();
    const digest = createHash('sha256').update(token).digest('base64url');
    const known = verified.get(digest, now());
    if (known) return known;
    let payload: JWTPayload;
    try {
      payload = await verify(token);
    } catch (error) {
      if (!(error instanceof errors.JWKSNoMatchingKey)) return undefined;
      try {
        if (!(await unknownKid())) return undefined;
        payload = await verify(token);
      } catch {
        return undefined;
      }
    }
    if (typeof payload.exp === 'number') verified.set(digest, payload, payload.exp * 1000, now());
    return payload;
  };
}
