import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { InvalidDpopProof } from '../errors/errors.js';
import { checkDpopProof, DPOP_IAT_WINDOW_S } from './dpop.js';

const NOW = 1_800_000_000_000;
const URL_ = 'https://tollgate.acme.test/v1/tasks/t/credentials';

async function proof(claims: Record<string, unknown> = {}, alg: 'ES256' | 'EdDSA' = 'ES256') {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = await exportJWK(publicKey);
  const token = await new SignJWT({ htm: 'POST', htu: URL_, iat: NOW / 1000, jti: 'j-1', ...claims })
    .setProtectedHeader({ alg, typ: 'dpop+jwt', jwk })
    .sign(privateKey);
  return { token, jkt: await calculateJwkThumbprint(jwk) };
}

describe('checkDpopProof', () => {
  it('returns the proof key thumbprint, jti and iat of a good proof (ES256 and EdDSA)', async () => {
    for (const alg of ['ES256', 'EdDSA'] as const) {
      const { token, jkt } = await proof({}, alg);
      expect(await checkDpopProof(token, { method: 'POST', url: URL_ }, NOW)).toEqual({ jkt, jti: 'j-1', iat: NOW / 1000 });
    }
  });

  it('compares htu without query and fragment, after normalisation', async () => {
    const { token } = await proof({ htu: 'https://TOLLGATE.acme.test:443/v1/tasks/t/credentials?x=1#f' });
    await expect(checkDpopProof(token, { method: 'POST', url: URL_ }, NOW)).resolves.toMatchObject({ jti: 'j-1' });
    const other = await proof({ htu: 'https://tollgate.acme.test/v1/tasks/u/credentials' });
    await expect(checkDpopProof(other.token, { method: 'POST', url: URL_ }, NOW)).rejects.toBeInstanceOf(InvalidDpopProof);
  });

  it(`accepts an iat up to ${DPOP_IAT_WINDOW_S} s away either way, and no further`, async () => {
    const { token } = await proof();
    const window = DPOP_IAT_WINDOW_S * 1000;
    await expect(checkDpopProof(token, { method: 'POST', url: URL_ }, NOW + window)).resolves.toBeDefined();
    await expect(checkDpopProof(token, { method: 'POST', url: URL_ }, NOW - window)).resolves.toBeDefined();
    await expect(checkDpopProof(token, { method: 'POST', url: URL_ }, NOW + window + 1000)).rejects.toBeInstanceOf(InvalidDpopProof);
    await expect(checkDpopProof(token, { method: 'POST', url: URL_ }, NOW - window - 1000)).rejects.toBeInstanceOf(InvalidDpopProof);
  });

  it('refuses a wrong method, a missing or over-long jti, an expired proof', async () => {
    const request = { method: 'POST', url: URL_ };
    await expect(checkDpopProof((await proof()).token, { ...request, method: 'PUT' }, NOW)).rejects.toThrow(/htm/);
    await expect(checkDpopProof((await proof({ jti: undefined })).token, request, NOW)).rejects.toThrow(/jti/);
    await expect(checkDpopProof((await proof({ jti: 'x'.repeat(257) })).token, request, NOW)).rejects.toThrow(/jti/);
    await expect(checkDpopProof((await proof({ exp: NOW / 1000 - 1 })).token, request, NOW)).rejects.toBeInstanceOf(InvalidDpopProof);
  });
});
