import { generateKeyPairSync } from 'node:crypto';
import { compactVerify, decodeProtectedHeader, exportJWK, importJWK, jwtVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import { signEdDsaCompact } from './compact-sign.js';

describe('signEdDsaCompact', () => {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');

  it('makes a JWS that jose verifies, claims and unicode intact', async () => {
    const jwk = await exportJWK(publicKey);
    const key = await importJWK({ ...jwk, alg: 'EdDSA' }, 'EdDSA');
    const token = signEdDsaCompact({ alg: 'EdDSA', typ: 'at+jwt', kid: 'k1' }, { iss: 'https://t', sub: 'Zoë 山田', exp: 4_000_000_000 }, privateKey);
    const { payload, protectedHeader } = await jwtVerify(token, key, { issuer: 'https://t', typ: 'at+jwt', algorithms: ['EdDSA'] });
    expect(payload.sub).toBe('Zoë 山田');
    expect(protectedHeader).toEqual({ alg: 'EdDSA', typ: 'at+jwt', kid: 'k1' });
    expect(decodeProtectedHeader(token).kid).toBe('k1');
  });

  it('signs what it says: a changed payload no longer verifies', async () => {
    const key = await importJWK({ ...(await exportJWK(publicKey)), alg: 'EdDSA' }, 'EdDSA');
    const token = signEdDsaCompact({ alg: 'EdDSA', typ: 'JWT', kid: 'k1' }, { scope: 'read' }, privateKey);
    const [h, , s] = token.split('.');
    const forged = `${h}.${Buffer.from(JSON.stringify({ scope: 'admin' })).toString('base64url')}.${s}`;
    await expect(compactVerify(forged, key)).rejects.toThrow();
  });

  it('refuses a key that is not Ed25519', () => {
    const { privateKey: ec } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    expect(() => signEdDsaCompact({ alg: 'EdDSA', typ: 'JWT', kid: 'k' }, {}, ec)).toThrow(TypeError);
  });
});
