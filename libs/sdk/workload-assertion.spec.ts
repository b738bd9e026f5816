import { decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair, jwtVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import { AssertionMinter } from './workload-assertion.js';

const AUD = 'https://tollgate.acme.test';

describe('AssertionMinter', () => {
  it('mints iss = sub = workload id, aud, a short exp, a kid, a jti, verifiable with the public key', async () => {
    const { privateKey, publicKey } = await generateKeyPair('EdDSA');
    const minter = new AssertionMinter({ workloadId: 'spiffe://acme.test/chatbot', privateKey, kid: 'k1', alg: 'EdDSA' });
    const token = await minter.token(AUD);
    const { payload, protectedHeader } = await jwtVerify(token, publicKey, {
      issuer: 'spiffe://acme.test/chatbot',
      subject: 'spiffe://acme.test/chatbot',
      audience: AUD,
      algorithms: ['EdDSA'],
    });
    expect(protectedHeader).toMatchObject({ alg: 'EdDSA', kid: 'k1', typ: 'JWT' });
    expect(payload.exp! - payload.iat!).toBe(120);
    expect(payload.exp! - payload.iat!).toBeLessThanOrEqual(300);
    expect(payload.jti).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('signs with a private JWK and with ES256', async () => {
    const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
    const jwk = await exportJWK(privateKey);
    const token = await new AssertionMinter({ workloadId: 'chatbot', privateKey: jwk, kid: 'k2', alg: 'ES256' }).token(AUD);
    await expect(jwtVerify(token, publicKey, { audience: AUD })).resolves.toBeTruthy();
    expect(decodeProtectedHeader(token).alg).toBe('ES256');
  });

  it('reuses an assertion until 30 s before it expires, then mints a new one; a new audience gets its own', async () => {
    const { privateKey } = await generateKeyPair('EdDSA');
    let now = Date.UTC(2026, 10, 27, 3, 0, 0);
    const minter = new AssertionMinter({ workloadId: 'chatbot', privateKey, kid: 'k1', alg: 'EdDSA', lifetime: 120 }, () => now);
    const first = await minter.token(AUD);
    now += 89_000;
    expect(await minter.token(AUD)).toBe(first);
    now += 2_000;
    const second = await minter.token(AUD);
    expect(second).not.toBe(first);
    expect(decodeJwt(second).iat).toBe(Math.floor(now / 1000));
    expect(await minter.token('https://other.test')).not.toBe(second);
  });

  it('shares one signature between concurrent callers', async () => {
    const { privateKey } = await generateKeyPair('EdDSA');
    const minter = new AssertionMinter({ workloadId: 'chatbot', privateKey, kid: 'k1', alg: 'EdDSA' });
    const tokens = await Promise.all([minter.token(AUD), minter.token(AUD), minter.token(AUD)]);
    expect(new Set(tokens).size).toBe(1);
  });

  it('refuses bad settings at construction, naming the field', async () => {
    const { privateKey } = await generateKeyPair('EdDSA');
    const key = { workloadId: 'chatbot', privateKey, kid: 'k1', alg: 'EdDSA' as const };
    expect(() => new AssertionMinter({ ...key, lifetime: 301 })).toThrow(/tokenSource\.lifetime/);
    expect(() => new AssertionMinter({ ...key, kid: '' })).toThrow(/tokenSource\.kid/);
    expect(() => new AssertionMinter({ ...key, alg: 'RS256' as 'EdDSA' })).toThrow(/tokenSource\.alg/);
  });
});
