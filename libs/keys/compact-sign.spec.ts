import { generateKeyPairSync } from 'node:crypto';
import { compactVerify, decodeProtectedHeader, exportJWK, importJWK, jwtVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import { signCompact } from './compact-sign.js';

describe('signCompact', () => {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');

  it('makes a JWS that jose verifies, claims and unicode intact', async () => {
    const jwk = await exportJWK(publicKey);
    const key = await importJWK({ ...jwk, alg: 'EdDSA' }, 'EdDSA');
    const token = signCompact(
      { alg: 'EdDSA', typ: 'at+jwt', kid: 'k1' },
      { iss: 'https://t', sub: 'Zoë 山田', exp: 4_000_000_000 },
      privateKey,
    );
    const { payload, protectedHeader } = await jwtVerify(token, key, { issuer: 'https://t', typ: 'at+jwt', algorithms: ['EdDSA'] });
    expect(payload.sub).toBe('Zoë 山田');
    expect(protectedHeader).toEqual({ alg: 'EdDSA', typ: 'at+jwt', kid: 'k1' });
    expect(decodeProtectedHeader(token).kid).toBe('k1');
  });

  it('signs what it says: a changed payload no longer verifies', async () => {
    const key = await importJWK({ ...(await exportJWK(publicKey)), alg: 'EdDSA' }, 'EdDSA');
    const token = signCompact({ alg: 'EdDSA', typ: 'JWT', kid: 'k1' }, { scope: 'read' }, privateKey);
    const [h, , s] = token.split('.');
    const forged = `${h}.${Buffer.from(JSON.stringify({ scope: 'admin' })).toString('base64url')}.${s}`;
    await expect(compactVerify(forged, key)).rejects.toThrow();
  });

  it('refuses a key that does not fit the alg', () => {
    const { privateKey: ec } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const { privateKey: p384 } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    expect(() => signCompact({ alg: 'EdDSA', typ: 'JWT', kid: 'k' }, {}, ec)).toThrow(TypeError);
    expect(() => signCompact({ alg: 'ES256', typ: 'JWT', kid: 'k' }, {}, privateKey)).toThrow(TypeError);
    expect(() => signCompact({ alg: 'ES256', typ: 'JWT', kid: 'k' }, {}, p384)).toThrow(TypeError);
  });

  it('signs ES256 in the JWS encoding (r || s) that jose verifies', async () => {
    const { publicKey: ecPublic, privateKey: ecPrivate } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const key = await importJWK({ ...(await exportJWK(ecPublic)), alg: 'ES256' }, 'ES256');
    for (let i = 0; i < 20; i++) {
      const token = signCompact({ alg: 'ES256', typ: 'at+jwt', kid: 'e1' }, { n: i, sub: 'Zoë' }, ecPrivate);
      expect(Buffer.from(token.split('.')[2]!, 'base64url')).toHaveLength(64);
      const { payload } = await jwtVerify(token, key, { typ: 'at+jwt', algorithms: ['ES256'] });
      expect(payload).toEqual({ n: i, sub: 'Zoë' });
    }
  });
});
