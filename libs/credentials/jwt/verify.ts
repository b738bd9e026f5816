import { createLocalJWKSet, jwtVerify, type JWK, type JWTPayload } from 'jose';

/**
 * Verifies a token Tollgate issued: our signature, our issuer, typ at+jwt. Expiry is not judged
 * here; the lease row decides whether the token is still good.
 */
export function issuedTokenVerifier(issuer: string, publicJwks: () => JWK[]): (token: string) => Promise<JWTPayload | undefined> {
  let cachedFor: JWK[] | undefined;
  let keySet: ReturnType<typeof createLocalJWKSet> | undefined;
  return async (token) => {
    const jwks = publicJwks();
    if (jwks !== cachedFor || !keySet) {
      keySet = createLocalJWKSet({ keys: jwks });
      cachedFor = jwks;
    }
    try {
      const { payload } = await jwtVerify(token, keySet, {
        issuer,
        typ: 'at+jwt',
        algorithms: ['EdDSA', 'ES256'],
        // Expiry is decided by the lease; accept an old token so we can say "inactive" for the right reason.
        clockTolerance: Number.MAX_SAFE_INTEGER,
      });
      return payload;
    } catch {
      return undefined;
    }
  };
}
