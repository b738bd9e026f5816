import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decrypt, encrypt } from './signing-keys.js';

describe('private keys at rest', () => {
  const kek = randomBytes(32);
  const secret = Buffer.from('a private key, in PKCS#8');

  it('round-trips under the same KEK and kid', () => {
    expect(decrypt(encrypt(secret, kek, 'kid-1'), kek, 'kid-1')).toEqual(secret);
  });

  it('never stores the plaintext', () => {
    expect(encrypt(secret, kek, 'kid-1')).not.toContain(secret.toString('base64url'));
  });

  it('fails under another KEK', () => {
    expect(() => decrypt(encrypt(secret, kek, 'kid-1'), randomBytes(32), 'kid-1')).toThrow();
  });

  it('fails when the ciphertext is moved onto another kid', () => {
    expect(() => decrypt(encrypt(secret, kek, 'kid-1'), kek, 'kid-2')).toThrow();
  });

  it('fails when a byte is flipped', () => {
    const sealed = encrypt(secret, kek, 'kid-1');
    const parts = sealed.split('.');
    const body = Buffer.from(parts[3]!, 'base64url');
    body[0] = body[0]! ^ 1;
    parts[3] = body.toString('base64url');
    expect(() => decrypt(parts.join('.'), kek, 'kid-1')).toThrow();
  });
});
