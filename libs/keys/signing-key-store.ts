import type { JWK } from 'jose';
import type { Sql } from '../db/index.js';
import type { GeneratedKey, SigningAlg } from './signing-keys.js';
import { encrypt } from './signing-keys.js';

export type KeyState = 'next' | 'active' | 'retired';

/** A published key as the ring reads it; times in milliseconds of the database clock. */
export interface KeyRow {
  kid: string;
  alg: SigningAlg;
  state: KeyState;
  public_jwk: JWK;
  /** Only the active key's, and only when asked for: the ring opens it when the active kid changes. */
  sealed: string | null;
  created_ms: number;
  activated_ms: number | null;
  retired_ms: number | null;
  publish_until_ms: number | null;
}

const COLUMNS = `kid, alg, state, public_jwk,
  (extract(epoch FROM created_at) * 1000)::float8 AS created_ms,
  (extract(epoch FROM activated_at) * 1000)::float8 AS activated_ms,
  (extract(epoch FROM retired_at) * 1000)::float8 AS retired_ms,
  (extract(epoch FROM publish_until) * 1000)::float8 AS publish_until_ms`;

/** An arbitrary constant: the transaction-scoped advisory lock every rotation takes first. */
const ROTATION_LOCK = 0x70_11_6b_e7;

/** SQL for Tollgate's signing keys. */
export class SigningKeyStore {
  constructor(private readonly sql: Sql) {}

  /**
   * Every key a verifier may meet (next, active, and retired keys still within their publication),
   * the active one first, with the database clock; one small read, made every few seconds.
   */
  async published(withSealedActive: boolean, sql: Sql = this.sql): Promise<{ now: number; rows: KeyRow[] }> {
    const { rows } = await sql.query<KeyRow & { now_ms: number }>(
      `SELECT ${COLUMNS}, CASE WHEN state = 'active' AND $1::boolean THEN private_key_encrypted END AS sealed,
              (extract(epoch FROM now()) * 1000)::float8 AS now_ms
         FROM (SELECT 1) AS one
         LEFT JOIN signing_keys ON state <> 'retired' OR publish_until IS NULL OR publish_until > now()
        ORDER BY CASE state WHEN 'active' THEN 0 WHEN 'next' THEN 1 ELSE 2 END, created_at DESC`,
      [withSealedActive],
    );
    const now = Number(rows[0]!.now_ms);
    return { now, rows: rows.filter((row) => row.kid !== null).map(toRow) };
  }

  /** Serialises rotations across replicas; released when the transaction ends. */
  async lockRotation(tx: Sql): Promise<void> {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [ROTATION_LOCK]);
  }

  async insert(tx: Sql, key: GeneratedKey, kek: Buffer, state: 'next' | 'active'): Promise<void> {
    await tx.query(
      `INSERT INTO signing_keys (kid, alg, public_jwk, private_key_encrypted, state, activated_at)
       VALUES ($1, $2, $3, $4, $5, CASE WHEN $5 = 'active' THEN now() END)`,
      [key.kid, key.alg, JSON.stringify(key.publicJwk), encrypt(key.pkcs8, kek, key.kid), state],
    );
  }

  /** Every private key still kept (the active and the next one), sealed, for a KEK change at start. */
  async sealedKeys(tx: Sql): Promise<Array<{ kid: string; sealed: string }>> {
    const { rows } = await tx.query<{ kid: string; sealed: string }>(
      `SELECT kid, private_key_encrypted AS sealed FROM signing_keys WHERE private_key_encrypted IS NOT NULL ORDER BY kid`,
    );
    return rows;
  }

  async reseal(tx: Sql, kid: string, sealed: string): Promise<void> {
    await tx.query(`UPDATE signing_keys SET private_key_encrypted = $2 WHERE kid = $1 AND private_key_encrypted IS NOT NULL`, [
      kid,
      sealed,
    ]);
  }

  /** A `next` key never signed anything: dropping it (to change its alg) orphans no token. */
  async dropNext(tx: Sql): Promise<void> {
    await tx.query(`DELETE FROM signing_keys WHERE state = 'next'`);
  }

  /**
   * The active key becomes retired (its private half destroyed: nothing may sign with it again),
   * then `kid` (the next key) becomes active. Returns the retired kid.
   */
  async promote(tx: Sql, kid: string): Promise<string | undefined> {
    const { rows } = await tx.query<{ kid: string }>(
      `UPDATE signing_keys SET state = 'retired', retired_at = now(), private_key_encrypted = NULL
        WHERE state = 'active' RETURNING kid`,
    );
    await tx.query(`UPDATE signing_keys SET state = 'active', activated_at = now() WHERE kid = $1`, [kid]);
    return rows[0]?.kid;
  }

  /** Records when a retired key leaves the JWKS; once only. */
  async setPublishUntil(tx: Sql, kid: string, until: number): Promise<boolean> {
    const { count } = await tx.query(
      `UPDATE signing_keys SET publish_until = to_timestamp($2::float8 / 1000)
        WHERE kid = $1 AND state = 'retired' AND publish_until IS NULL`,
      [kid, until],
    );
    return count === 1;
  }
}

function toRow(row: KeyRow): KeyRow {
  const ms = (value: number | string | null) => (value === null ? null : Number(value));
  return {
    kid: row.kid,
    alg: row.alg,
    state: row.state,
    public_jwk: row.public_jwk,
    sealed: row.sealed,
    created_ms: Number(row.created_ms),
    activated_ms: ms(row.activated_ms),
    retired_ms: ms(row.retired_ms),
    publish_until_ms: ms(row.publish_until_ms),
  };
}
