import { createCipheriv, createDecipheriv, createPrivateKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { calculateJwkThumbprint, type JWK } from 'jose';
import { ConfigurationError } from '../errors/errors.js';
import type { Sql } from '../db/database.js';
import { uuidv7 } from '../ids/ids.js';

/** The key Tollgate signs issued credentials with. The private half lives only in memory. */
export interface SigningKey {
  kid: string;
  alg: 'EdDSA';
  /** For node:crypto's synchronous signing on the hot path (see credentials/jwt/compact-sign). */
  privateKeyObject: KeyObject;
  publicJwk: JWK;
}

export interface SigningKeyRing {
  active: SigningKey;
  /** Every public key a verifier may meet: the active one first, then retired ones. */
  publicJwks: JWK[];
}

/**
 * Loads the signing keys, creating the first Ed25519 key on a fresh database. Call under the
 * startup lock so two replicas never create two "first" keys. A KEK that cannot decrypt the stored
 * keys stops start: signing with a fresh key would silently orphan every outstanding token.
 */
export async function loadSigningKeys(sql: Sql, kek: Buffer): Promise<SigningKeyRing> {
  let rows = await selectKeys(sql);
  if (!rows.some((row) => row.state === 'active')) {
    await insertKey(sql, kek, generateEd25519());
    rows = await selectKeys(sql);
  }
  const activeRow = rows.find((row) => row.state === 'active')!;
  let pkcs8: Buffer;
  try {
    pkcs8 = decrypt(activeRow.private_key_encrypted, kek, activeRow.kid);
  } catch {
    throw new ConfigurationError([
      'TOLLGATE_KEK: does not decrypt the stored signing keys (was the key-encryption key changed?)',
    ]);
  }
  return {
    active: {
      kid: activeRow.kid,
      alg: 'EdDSA',
      privateKeyObject: createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }),
      publicJwk: activeRow.public_jwk,
    },
    publicJwks: rows.map((row) => row.public_jwk),
  };
}

interface KeyRow {
  kid: string;
  public_jwk: JWK;
  private_key_encrypted: string;
  state: 'active' | 'retired';
}

async function selectKeys(sql: Sql): Promise<KeyRow[]> {
  const { rows } = await sql.query<KeyRow>(
    `SELECT kid, public_jwk, private_key_encrypted, state FROM signing_keys
      ORDER BY (state = 'active') DESC, created_at DESC`,
  );
  return rows;
}

function generateEd25519(): { publicKey: KeyObject; privateKey: KeyObject } {
  return generateKeyPairSync('ed25519');
}

async function insertKey(sql: Sql, kek: Buffer, pair: { publicKey: KeyObject; privateKey: KeyObject }): Promise<void> {
  const exported = pair.publicKey.export({ format: 'jwk' }) as JWK;
  const thumbprint = await calculateJwkThumbprint(exported, 'sha256');
  const kid = `${thumbprint.slice(0, 16)}-${uuidv7().slice(0, 8)}`;
  const publicJwk: JWK = { kty: exported.kty, crv: exported.crv, x: exported.x, alg: 'EdDSA', use: 'sig', kid };
  const pkcs8 = pair.privateKey.export({ format: 'der', type: 'pkcs8' });
  await sql.query(
    `INSERT INTO signing_keys (kid, alg, public_jwk, private_key_encrypted, state) VALUES ($1, 'EdDSA', $2, $3, 'active')`,
    [kid, JSON.stringify(publicJwk), encrypt(pkcs8, kek, kid)],
  );
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
  return ['v1', iv, cipher.getAuthTag(), ciphertext].map((part) => (typeof part === 'string' ? part : part.toString('base64url'))).join('.');
}

export function decrypt(encoded: string, kek: Buffer, kid: string): Buffer {
  const [version, iv, tag, ciphertext] = encoded.split('.');
  if (version !== 'v1' || !iv || !tag || ciphertext === undefined) throw new Error('unknown key encoding');
  const decipher = createDecipheriv('aes-256-gcm', kek, Buffer.from(iv, 'base64url'));
  decipher.setAAD(Buffer.from(kid));
  decipher.setAuthTag(Buffer.from(tag, 'base64url'));
  return Buffer.concat([decipher.update(Buffer.from(ciphertext, 'base64url')), decipher.final()]);
}
