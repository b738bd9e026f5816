import type { JWK } from 'jose';
import type { Sql } from '../db/index.js';
import type { ApiKey, ApiKeyRole } from './api-key.js';

const COLUMNS = 'id, role, audience, label, jwks, created_at, revoked_at';

/** SQL for API keys and for the jti of private_key_jwt client assertions. */
export class ApiKeyStore {
  constructor(private readonly sql: Sql) {}

  /** The live key with this hash (revoked keys are not found). */
  async findByHash(hash: string): Promise<ApiKey | undefined> {
    const { rows } = await this.sql.query<ApiKeyRow>(
      `SELECT ${COLUMNS} FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL`,
      [hash],
      'tollgate_api_key_by_hash',
    );
    return rows[0] && toApiKey(rows[0]);
  }

  /** The live key with this id. */
  async findById(id: string): Promise<ApiKey | undefined> {
    const { rows } = await this.sql.query<ApiKeyRow>(
      `SELECT ${COLUMNS} FROM api_keys WHERE id = $1 AND revoked_at IS NULL`,
      [id],
      'tollgate_api_key_by_id',
    );
    return rows[0] && toApiKey(rows[0]);
  }

  /** Which of these ids are live keys: one query for every open event stream's key. */
  async liveIds(ids: readonly string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const { rows } = await this.sql.query<{ id: string }>(
      'SELECT id FROM api_keys WHERE id IN (SELECT jsonb_array_elements_text($1::jsonb)::uuid) AND revoked_at IS NULL',
      [JSON.stringify(ids)],
      'tollgate_api_keys_live',
    );
    return new Set(rows.map((row) => row.id));
  }

  async insert(
    sql: Sql,
    key: { id: string; hash: string; role: ApiKeyRole; audience: string | null; label: string | null; jwks: { keys: JWK[] } | null },
  ): Promise<ApiKey> {
    const { rows } = await sql.query<ApiKeyRow>(
      `INSERT INTO api_keys (id, key_hash, role, audience, label, jwks) VALUES ($1, $2, $3, $4, $5, $6::jsonb) RETURNING ${COLUMNS}`,
      [key.id, key.hash, key.role, key.audience, key.label, key.jwks === null ? null : JSON.stringify(key.jwks)],
    );
    return toApiKey(rows[0]!);
  }

  /** Every key, revoked ones too (they stay as a record), oldest first. */
  async list(): Promise<ApiKey[]> {
    const { rows } = await this.sql.query<ApiKeyRow>(`SELECT ${COLUMNS} FROM api_keys ORDER BY created_at, id LIMIT 10000`);
    return rows.map(toApiKey);
  }

  /** Revokes a live key; undefined when there is no such key or it was already revoked. */
  async revoke(sql: Sql, id: string): Promise<ApiKey | undefined> {
    const { rows } = await sql.query<ApiKeyRow>(
      `UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL RETURNING ${COLUMNS}`,
      [id],
    );
    return rows[0] && toApiKey(rows[0]);
  }

  async find(id: string, sql: Sql = this.sql): Promise<ApiKey | undefined> {
    const { rows } = await sql.query<ApiKeyRow>(`SELECT ${COLUMNS} FROM api_keys WHERE id = $1`, [id]);
    return rows[0] && toApiKey(rows[0]);
  }

  async count(sql: Sql = this.sql): Promise<number> {
    const { rows } = await sql.query<{ n: number }>('SELECT count(*)::int AS n FROM api_keys');
    return rows[0]!.n;
  }

  /**
   * Records a client assertion's jti until `expiresAtMs`; false when the client already used it (a
   * replay), on this replica or any other. The client's own expired jtis are dropped on the way,
   * so the table holds no more than each client's assertions of the last few minutes.
   */
  async recordAssertion(clientId: string, jti: string, expiresAtMs: number): Promise<boolean> {
    const { rows } = await this.sql.query<{ recorded: number }>(
      `WITH purge AS (
         DELETE FROM client_assertions WHERE client_id = $1 AND expires_at < now()
       ), recorded AS (
         INSERT INTO client_assertions (client_id, jti, expires_at) VALUES ($1, $2, to_timestamp($3::float8 / 1000))
         ON CONFLICT DO NOTHING RETURNING 1
       )
       SELECT count(*)::int AS recorded FROM recorded`,
      [clientId, jti, expiresAtMs],
      'tollgate_record_client_assertion',
    );
    return rows[0]!.recorded === 1;
  }
}

interface ApiKeyRow {
  id: string;
  role: ApiKeyRole;
  audience: string | null;
  label: string | null;
  jwks: { keys: JWK[] } | null;
  created_at: Date;
  revoked_at: Date | null;
}

function toApiKey(row: ApiKeyRow): ApiKey {
  return {
    id: row.id,
    role: row.role,
    audience: row.audience,
    label: row.label,
    jwks: row.jwks,
    createdAt: new Date(row.created_at),
    revokedAt: row.revoked_at ? new Date(row.revoked_at) : null,
  };
}
