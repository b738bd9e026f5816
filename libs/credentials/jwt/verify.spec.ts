import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { describe, expect, it } from 'vitest';
import { issuedTokenVerifier } from './verify.js';

const ISSUER = 'https://tollgate.acme.test';

async function signer(kid: string) {
  const { publicKey, privateKey } = await generateKeyPair('EdDSA');
  return { jwk: { ...(await exportJWK(publicKey)), kid, alg: 'EdDSA' } as JWK, privateKey };
}

function token(privateKey: CryptoKey, kid: string, claims: Record<string, unknown>, exp: number): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'EdDSA', kid, typ: 'at+jwt' })
    .setIssuer(ISSUER)
    .setExpirationTime(exp)
    .sign(privateKey);
}

describe('issuedTokenVerifier', () => {
  const now = 1_800_000_000_000;

  it('accepts our tokens, expired ones too (the lease decides), and refuses tampering', async () => {
    const key = await signer('k1');
    const verify = issuedTokenVerifier(
      ISSUER,
      () => [key.jwk],
      () => now,
    );
    const good = await token(key.privateKey, 'k1', { jti: 'a' }, now / 1000 + 60);
    expect((await verify(good))?.jti).toBe('a');
    const old = await token(key.privateKey, 'k1', { jti: 'b' }, now / 1000 - 3600);
    expect((await verify(old))?.jti).toBe('b');
    const [h, , s] = good.split('.');
    const forged = `${h}.${Buffer.from(JSON.stringify({ iss: ISSUER, jti: 'evil', exp: now / 1000 + 60 })).toString('base64url')}.${s}`;
    expect(await verify(forged)).toBeUndefined();
  });

  it('remembers a verified token but never a forged variant of it, and forgets all when a key is withdrawn', async () => {
    const key = await signer('k1');
    let keys = [key.jwk];
    const verify = issuedTokenVerifier(
      ISSUER,
      () => keys,
      () => now,
    );
    const good = await token(key.privateKey, 'k1', { jti: 'a' }, now / 1000 + 60);
    await verify(good);
    const at = good.lastIndexOf('.') + 10;
    const tampered = good.slice(0, at) + (good[at] === 'A' ? 'B' : 'A') + good.slice(at + 1);
    expect(await verify(tampered)).toBeUndefined();
    keys = [...keys, (await signer('k2')).jwk];
    expect((await verify(good))?.jti).toBe('a');
    keys = [keys[1]!];
    expect(await verify(good)).toBeUndefined();
  });

  it('on an unknown kid, asks for the keys again once and verifies with what it finds', async () => {
    const old = await signer('k1');
    const rotated = await signer('k2');
    let keys = [old.jwk];
    let asked = 0;
    const verify = issuedTokenVerifier(
      ISSUER,
      () => keys,
      () => now,
      100,
      async () => {
        asked++;
        const before = keys;
        keys = [old.jwk, rotated.jwk];
        return keys !== before;
      },
    );
    const fresh = await token(rotated.privateKey, 'k2', { jti: 'n' }, now / 1000 + 60);
    expect((await verify(fresh))?.jti).toBe('n');
    expect(asked).toBe(1);
    const stranger = await signer('k3');
    expect(await verify(await token(stranger.privateKey, 'k3', { jti: 'x' }, now / 1000 + 60))).toBeUndefined();
    expect(asked).toBe(2);
  });
});
