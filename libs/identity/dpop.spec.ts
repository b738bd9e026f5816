import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { InvalidDpopProof } from '../errors/errors.js';
import type { DpopProofStore } from './dpop-proof-store.js';
import { checkDpopProof, DPOP_IAT_WINDOW_S, DpopVerifier } from './dpop.js';

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

describe('checkDpopProof edges', () => {
  const request = { method: 'POST', url: URL_ };

  it('takes a jti of exactly 256 characters and refuses an empty one or a missing htu', async () => {
    await expect(checkDpopProof((await proof({ jti: 'x'.repeat(256) })).token, request, NOW)).resolves.toMatchObject({
      jti: 'x'.repeat(256),
    });
    await expect(checkDpopProof((await proof({ jti: '' })).token, request, NOW)).rejects.toThrow(/jti/);
    await expect(checkDpopProof((await proof({ htu: undefined })).token, request, NOW)).rejects.toThrow(/htu/);
    await expect(checkDpopProof((await proof({ htu: 'not a url' })).token, request, NOW)).rejects.toThrow(/htu/);
    await expect(checkDpopProof((await proof({ iat: undefined })).token, request, NOW)).rejects.toThrow(/iat/);
  });

  it('refuses a proof whose jwk header carries the private key', async () => {
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const jwk = await exportJWK(privateKey);
    const token = await new SignJWT({ htm: 'POST', htu: URL_, iat: NOW / 1000, jti: 'j-1' })
      .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk })
      .sign(privateKey);
    await expect(checkDpopProof(token, request, NOW)).rejects.toBeInstanceOf(InvalidDpopProof);
  });
});

describe('DpopVerifier', () => {
  const ISSUER = 'https://tollgate.acme.test';
  const PATH = '/v1/tasks/t/credentials';

  /** The proofs store as the verifier sees it: a claim succeeds once per jti hash. */
  function verifier() {
    const claims: { jtiHash: string; expiresAt: number }[] = [];
    const proofs = {
      claim: async (jtiHash: string, expiresAt: number) =>
        claims.some((c) => c.jtiHash === jtiHash) ? false : (claims.push({ jtiHash, expiresAt }), true),
    };
    return { claims, dpop: new DpopVerifier(ISSUER, proofs as unknown as DpopProofStore, { now: () => NOW }) };
  }

  it('checks the proof against TOLLGATE_ISSUER and the route path (query left out) and keeps its jti until the iat window ends', async () => {
    const { dpop, claims } = verifier();
    const { token, jkt } = await proof();
    expect(await dpop.verify([token], 'POST', `${PATH}?x=1`)).toEqual({ jkt });
    expect(claims).toEqual([{ jtiHash: expect.any(String), expiresAt: (NOW / 1000 + DPOP_IAT_WINDOW_S) * 1000 }]);
    const elsewhere = await proof({ htu: `${ISSUER}/v1/tasks/u/credentials` });
    await expect(verifier().dpop.verify([elsewhere.token], 'POST', PATH)).rejects.toThrow(/htu/);
  });

  it('refuses a replayed proof, but not the same jti under another key', async () => {
    const { dpop } = verifier();
    const first = await proof();
    await dpop.verify([first.token], 'POST', PATH);
    await expect(dpop.verify([first.token], 'POST', PATH)).rejects.toThrow(/already used/);
    const second = await proof();
    await expect(dpop.verify([second.token], 'POST', PATH)).resolves.toEqual({ jkt: second.jkt });
  });

  it('wants exactly one DPoP header holding one compact JWS of at most 8192 characters', async () => {
    const { dpop } = verifier();
    const { token } = await proof();
    await expect(dpop.verify([], 'POST', PATH)).rejects.toThrow(/exactly one/);
    await expect(dpop.verify([token, token], 'POST', PATH)).rejects.toThrow(/exactly one/);
    for (const bad of ['a.b', `${token}.x`, ` ${token}`, `${token}\n`, 'a.b.c'.padEnd(8193, 'c')]) {
      await expect(dpop.verify([bad], 'POST', PATH), bad.slice(0, 20)).rejects.toThrow(/one compact JWS/);
    }
  });
});
