import { createCipheriv, createDecipheriv, createPrivateKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { calculateJwkThumbprint, type JWK } from 'jose';
import { SIGNING_ALGS, type SigningAlg } from '../config/index.js';
import { uuidv7 } from '../ids/index.js';

// Defined with the configuration (kernel), which must check TOLLGATE_SIGNING_ALG without reaching up to keys.
export { SIGNING_ALGS, type SigningAlg };

/** A key Tollgate signs issued credentials with. The private half lives only in memory. */
export interface SigningKey {
  kid: string;
  alg: SigningAlg;
  /** For node:crypto's synchronous signing on the hot path (see keys/compact-sign). */
  privateKeyObject: KeyObject;
  publicJwk: JWK;
}

/** A freshly generated key: the public JWK, and the private half as PKCS#8, to be sealed. */
export interface GeneratedKey {
  kid: string;
  alg: SigningAlg;
  publicJwk: JWK;
  pkcs8: Buffer;
}

export async function generateSigningKey(alg: SigningAlg): Promise<GeneratedKey> {
  const pair = alg === 'EdDSA' ? generateKeyPairSync('ed25519') : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const exported = pair.publicKey.export({ format: 'jwk' }) as JWK;
  const thumbprint = await calculateJwkThumbprint(exported, 'sha256');
  const kid = `${thumbprint.slice(0, 16)}-${uuidv7().slice(0, 8)}`;
  const publicJwk: JWK =
    alg === 'EdDSA'
      ? { kty: exported.kty, crv: exported.crv, x: exported.x, alg, use: 'sig', kid }
      : { kty: exported.kty, crv: exported.crv, x: exported.x, y: exported.y, alg, use: 'sig', kid };
  return { kid, alg, publicJwk, pkcs8: pair.privateKey.export({ format: 'der', type: 'pkcs8' }) };
}

/** Opens a sealed private key; throws when the KEK (or the kid bound into it) does not match. */
export function openSigningKey(row: { kid: string; alg: SigningAlg; public_jwk: JWK }, sealed: string, kek: Buffer): SigningKey {
  const pkcs8 = decrypt(sealed, kek, row.kid);
  return {
    kid: row.kid,
    alg: row.alg,
    privateKeyObject: createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }),
    publicJwk: row.public_jwk,
  };
}

/**
 * AES-256-GCM under the KEK, the kid bound in as additional data so an encrypted key cannot be
 * swapped onto another row. Format: v1.<iv>.<tag>.<ciphertext>, each base64url.
 */
export function encrypt(plaintext: Buffer, kek: Buffer, kid: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', kek, iv);
  cipher.setAAD(Buffer.from(kid));
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return ['v1', iv, cipher.getAuthTag(), ciphertext]
    .map((part) => (typeof part === 'string' ? part : part.toString('base64url')))
    .join('.');
}

export function decrypt(encoded: string, kek: Buffer, kid: string): Buffer {
  const [version, iv, tag, ciphertext] = encoded.split('.');
  if (version !== 'v1' || !iv || !tag || ciphertext === undefined) throw new Error('unknown key encoding');
  const decipher = createDecipheriv('aes-256-gcm', kek, Buffer.from(iv, 'base64url'));
  decipher.setAAD(Buffer.from(kid));
  decipher.setAuthTag(Buffer.from(tag, 'base64url'));
  return Buffer.concat([decipher.update(Buffer.from(ciphertext, 'base64url')), decipher.final()]);
}
