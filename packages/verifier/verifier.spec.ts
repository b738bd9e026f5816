import { createHash, randomUUID } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { challengeFor } from './adapters.js';
import { ReplayCache } from './dpop.js';
import { InsufficientScope, InvalidDpopProof, InvalidToken, MissingToken, VerifierUnavailable } from './errors.js';
import { paramsDigest } from './params-digest.js';
import { createVerifier, type Verifier } from './verifier.js';

const ISSUER = 'https://tollgate.test';
const TOOL = 'https://crm.acme.test';
const URL_ = 'https://crm.acme.test/orders/o-1/refund';

let signing: { privateKey: CryptoKey; jwk: JWK };
let holder: { privateKey: CryptoKey; jwk: JWK; jkt: string };
let verifier: Verifier;
const clock = Date.now();

beforeAll(async () => {
  const pair = await generateKeyPair('EdDSA');
  signing = { privateKey: pair.privateKey, jwk: { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'EdDSA' } };
  const dpopPair = await generateKeyPair('ES256');
  const jwk = await exportJWK(dpopPair.publicKey);
  holder = { privateKey: dpopPair.privateKey, jwk, jkt: await calculateJwkThumbprint(jwk) };
  verifier = createVerifier({ issuer: ISSUER, audience: TOOL, jwks: { keys: [signing.jwk] }, now: () => clock });
});

const seconds = () => Math.floor(clock / 1000);

async function token(
  claims: Record<string, unknown> = {},
  header: Record<string, unknown> = {},
  key = signing.privateKey,
): Promise<string> {
  const now = seconds();
  return new SignJWT({
    iss: ISSUER,
    aud: TOOL,
    sub: 'user-42',
    iat: now,
    nbf: now,
    exp: now + 120,
    jti: randomUUID(),
    task_id: randomUUID(),
    authorization_details: [
      {
        type: 'tool_call',
        boundary: 'crm-orders',
        action: 'orders:refund',
        resource: 'order/o-1',
        params_digest: paramsDigest({ amount: 49 }),
      },
    ],
    ...claims,
  })
    .setProtectedHeader({ alg: 'EdDSA', kid: 'k1', typ: 'at+jwt', ...header })
    .sign(key);
}

async function proof(accessToken: string, overrides: Record<string, unknown> = {}, key = holder): Promise<string> {
  return new SignJWT({
    htm: 'POST',
    htu: URL_,
    iat: seconds(),
    jti: randomUUID(),
    ath: createHash('sha256').update(accessToken).digest('base64url'),
    ...overrides,
  })
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: key.jwk })
    .sign(key.privateKey);
}

const request = { method: 'POST', url: URL_ };

describe('verify: the token', () => {
  it('accepts a good bearer token and hands back its claims and call', async () => {
    const good = await token();
    const call = await verifier.verify(good, request);
    expect(call.claims.aud).toBe(TOOL);
    expect(call.toolCall).toMatchObject({ action: 'orders:refund', resource: 'order/o-1' });
    expect(call.boundTo).toBeUndefined();
  });

  it.each([
    ['expired', { exp: Math.floor(Date.now() / 1000) - 60 }, {}],
    ['not yet valid', { nbf: Math.floor(Date.now() / 1000) + 60 }, {}],
    ['another audience', { aud: 'https://billing.acme.test' }, {}],
    ['another issuer', { iss: 'https://evil.test' }, {}],
    ['another type', {}, { typ: 'JWT' }],
    ['no tool_call', { authorization_details: [] }, {}],
    ['no jti', { jti: undefined }, {}],
  ])('refuses a token that is %s (InvalidToken)', async (_name, claims, header) => {
    await expect(verifier.verify(await token(claims, header), request)).rejects.toBeInstanceOf(InvalidToken);
  });

  it('allows exp within the leeway, and refuses an algorithm off the allow-list or a key not in the JWKS', async () => {
    await expect(verifier.verify(await token({ exp: seconds() - 3 }), request)).resolves.toBeDefined();
    const es384 = await generateKeyPair('ES384');
    const listed = createVerifier({
      issuer: ISSUER,
      audience: TOOL,
      jwks: { keys: [{ ...(await exportJWK(es384.publicKey)), kid: 'k384', alg: 'ES384' }] },
    });
    const signed = await new SignJWT({ iss: ISSUER, aud: TOOL, iat: seconds(), exp: seconds() + 60, jti: 'x' })
      .setProtectedHeader({ alg: 'ES384', kid: 'k384', typ: 'at+jwt' })
      .sign(es384.privateKey);
    await expect(listed.verify(signed, request)).rejects.toThrow(/alg/);
    const stranger = await generateKeyPair('EdDSA');
    await expect(verifier.verify(await token({}, {}, stranger.privateKey), request)).rejects.toBeInstanceOf(InvalidToken);
  });

  it('refuses nothing at all as MissingToken, and a garbled header as InvalidToken', async () => {
    await expect(verifier.verifyRequest({ ...request, headers: {} })).rejects.toBeInstanceOf(MissingToken);
    await expect(verifier.verifyRequest({ ...request, headers: { authorization: 'Basic abc' } })).rejects.toBeInstanceOf(InvalidToken);
  });

  it('fails closed when the JWKS cannot be read', async () => {
    const unreachable = createVerifier({ issuer: ISSUER, audience: TOOL, jwksUri: 'http://127.0.0.1:9/jwks.json' });
    await expect(unreachable.verify(await token(), request)).rejects.toBeInstanceOf(VerifierUnavailable);
  });
});

describe('verify: DPoP (RFC 9449)', () => {
  it('accepts a bound token with a good proof, under the DPoP scheme', async () => {
    const bound = await token({ cnf: { jkt: holder.jkt } });
    const headers = { authorization: `DPoP ${bound}`, dpop: await proof(bound) };
    const call = await verifier.verifyRequest({ ...request, headers });
    expect(call.boundTo).toBe(holder.jkt);
  });

  it('refuses a bound token as a bearer token, with or without a proof', async () => {
    const bound = await token({ cnf: { jkt: holder.jkt } });
    await expect(verifier.verifyRequest({ ...request, headers: { authorization: `Bearer ${bound}` } })).rejects.toBeInstanceOf(
      InvalidToken,
    );
    await expect(
      verifier.verifyRequest({ ...request, headers: { authorization: `Bearer ${bound}`, dpop: await proof(bound) } }),
    ).rejects.toBeInstanceOf(InvalidToken);
    await expect(verifier.verify(bound, { ...request, scheme: 'DPoP' })).rejects.toBeInstanceOf(InvalidDpopProof);
  });

  it('refuses an unbound token under the DPoP scheme', async () => {
    const plain = await token();
    await expect(
      verifier.verifyRequest({ ...request, headers: { authorization: `DPoP ${plain}`, dpop: await proof(plain) } }),
    ).rejects.toBeInstanceOf(InvalidToken);
  });

  it.each([
    ['another method', { htm: 'GET' }],
    ['another URL', { htu: 'https://crm.acme.test/orders/o-2/refund' }],
    ['another token (ath)', { ath: 'x' }],
    ['no ath', { ath: undefined }],
    ['an old iat', { iat: Math.floor(Date.now() / 1000) - 600 }],
    ['a future iat', { iat: Math.floor(Date.now() / 1000) + 600 }],
    ['no jti', { jti: undefined }],
  ])('refuses a proof for %s', async (_name, overrides) => {
    const bound = await token({ cnf: { jkt: holder.jkt } });
    await expect(verifier.verify(bound, { ...request, scheme: 'DPoP', dpopProof: await proof(bound, overrides) })).rejects.toBeInstanceOf(
      InvalidDpopProof,
    );
  });

  it("refuses a proof by another key than the token's, and a replayed proof; the query is not part of htu", async () => {
    const bound = await token({ cnf: { jkt: holder.jkt } });
    const other = await generateKeyPair('ES256');
    const otherKey = { privateKey: other.privateKey, jwk: await exportJWK(other.publicKey), jkt: '' };
    await expect(verifier.verify(bound, { ...request, scheme: 'DPoP', dpopProof: await proof(bound, {}, otherKey) })).rejects.toThrow(
      /bound to/,
    );
    const once = await proof(bound);
    await verifier.verify(bound, { ...request, url: `${URL_}?x=1`, scheme: 'DPoP', dpopProof: once });
    await expect(verifier.verify(bound, { ...request, scheme: 'DPoP', dpopProof: once })).rejects.toThrow(/used before/);
  });
});

describe('ReplayCache', () => {
  it('is bounded: when full the oldest id goes, and proofs no newer than it are refused from then on', () => {
    const cache = new ReplayCache(2, 60);
    expect(cache.remember('a', 100, 100)).toBe(true);
    expect(cache.remember('a', 100, 100)).toBe(false);
    expect(cache.remember('b', 101, 101)).toBe(true);
    expect(cache.remember('c', 102, 102)).toBe(true);
    expect(cache.size).toBe(2);
    expect(cache.remember('a', 100, 102)).toBe(false); // evicted, yet not accepted again
    expect(cache.remember('d', 100, 102)).toBe(false);
  });

  it('forgets ids once their proofs are too old to be accepted anyway', () => {
    const cache = new ReplayCache(10, 60);
    cache.remember('a', 100, 100);
    cache.remember('b', 300, 300);
    expect(cache.size).toBe(1);
  });
});

describe('checkCall', () => {
  it('passes the call the credential names, and refuses another action, resource or params (InsufficientScope)', async () => {
    const call = await verifier.verify(await token(), request);
    expect(() => call.checkCall({ action: 'orders:refund', resource: 'order/o-1', params: { amount: 49 } })).not.toThrow();
    expect(() => call.checkCall({ action: 'orders:read', resource: 'order/o-1', params: { amount: 49 } })).toThrow(InsufficientScope);
    expect(() => call.checkCall({ action: 'orders:refund', resource: 'order/o-2', params: { amount: 49 } })).toThrow(InsufficientScope);
    expect(() => call.checkCall({ action: 'orders:refund', params: { amount: 49 } })).toThrow(InsufficientScope);
    expect(() => call.checkCall({ action: 'orders:refund', resource: 'order/o-1', params: { amount: 5000 } })).toThrow(/params/);
    expect(() => call.checkCall({ action: 'orders:refund', resource: 'order/o-1' })).toThrow(InsufficientScope);
  });

  it('digests absent params as null, and refuses any params when the credential names no digest', async () => {
    const none = await verifier.verify(
      await token({ authorization_details: [{ type: 'tool_call', action: 'orders:read', params_digest: paramsDigest(null) }] }),
      request,
    );
    expect(() => none.checkCall({ action: 'orders:read' })).not.toThrow();
    expect(() => none.checkCall({ action: 'orders:read', params: {} })).toThrow(InsufficientScope);
    const undigested = await verifier.verify(
      await token({ authorization_details: [{ type: 'tool_call', action: 'orders:read' }] }),
      request,
    );
    expect(() => undigested.checkCall({ action: 'orders:read' })).toThrow(/does not name/);
  });
});

describe('challengeFor', () => {
  it('answers as RFC 6750 and RFC 9449 say', async () => {
    expect(challengeFor(new MissingToken('no credential'), { realm: 'crm' })).toMatchObject({
      status: 401,
      headers: { 'www-authenticate': ['Bearer realm="crm"', expect.stringMatching(/^DPoP realm="crm", algs="ES256 EdDSA/)] },
    });
    const invalid = new InvalidToken('"exp" claim timestamp check failed');
    expect(challengeFor(invalid)).toEqual({
      status: 401,
      headers: { 'www-authenticate': 'Bearer error="invalid_token", error_description="exp claim timestamp check failed"' },
      body: { error: 'invalid_token', error_description: '"exp" claim timestamp check failed' },
    });
    const replayed = new InvalidDpopProof('DPoP proof: the proof was used before');
    expect(challengeFor(replayed).headers['www-authenticate']).toMatch(/^DPoP error="invalid_dpop_proof", .*algs="/);
    expect(challengeFor(new InsufficientScope('another action')).status).toBe(403);
    expect(challengeFor(new InsufficientScope('another action')).headers['www-authenticate']).toMatch(/^Bearer error="insufficient_scope"/);
    expect(challengeFor(new VerifierUnavailable('down'))).toMatchObject({ status: 503, body: { error: 'temporarily_unavailable' } });
    expect(challengeFor(new Error('bug'))).toMatchObject({ status: 500, body: { error: 'server_error' } });
  });
});
