import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';

/** A bot's signing key, as a workload would hold it. */
export interface WorkloadKey {
  alg: 'EdDSA' | 'ES256';
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

export async function workloadKey(
  alg: 'EdDSA' | 'ES256' = 'EdDSA',
  kid = `k-${Math.random().toString(36).slice(2, 10)}`,
): Promise<WorkloadKey> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { alg, kid, privateKey, publicJwk };
}

/** A workload assertion: iss = sub = workload id, aud = the broker's issuer, five minutes at most. */
export async function assertion(
  workloadId: string,
  key: WorkloadKey,
  audience: string,
  options: { claims?: JWTPayload; header?: Record<string, unknown>; iat?: number; exp?: number } = {},
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ ...options.claims })
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT', ...options.header })
    .setIssuer(workloadId)
    .setSubject(workloadId)
    .setAudience(audience)
    .setIssuedAt(options.iat ?? now)
    .setExpirationTime(options.exp ?? now + 120)
    .setJti(crypto.randomUUID())
    .sign(key.privateKey);
}
