import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decrypt, encrypt } from './signing-keys.js';

describe('private keys at rest', () => {
  const kek = randomBytes(32);
  // Characters that base64 and base64url, JSON and URL encoding each spell differently.
  const secret = Buffer.from('a private key,\n in "PKCS#8" ~~~?>>>');

  it('round-trips under the same KEK and kid', () => {
    expect(decrypt(encrypt(secret, kek, 'kid-1'), kek, 'kid-1')).toEqual(secret);
  });

  it('never stores the plaintext', () => {
    const sealed = encrypt(secret, kek, 'kid-1');
    // Every spelling a careless encoding could leave behind, not only the one the code uses.
    const spellings = {
      raw: secret.toString('utf8'),
      base64url: secret.toString('base64url'),
      base64: secret.toString('base64').replace(/=+$/, ''),
      hex: secret.toString('hex'),
      HEX: secret.toString('hex').toUpperCase(),
      urlEncoded: encodeURIComponent(secret.toString('utf8')),
      jsonEscaped: JSON.stringify(secret.toString('utf8')).slice(1, -1),
    };
    for (const [name, spelling] of Object.entries(spellings)) expect(sealed, name).not.toContain(spelling);
    // Nor inside a decoded part, whatever its alignment in the encoding.
    for (const part of sealed.split('.')) {
      for (const encoding of ['base64url', 'base64', 'hex'] as const)
        expect(Buffer.from(part, encoding).includes(secret), `${encoding} part`).toBe(false);
    }
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
