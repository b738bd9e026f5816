import type { JWK } from 'jose';
import type { Sql } from '../db/index.js';
import type { Issuer, IssuerDefinition, IssuerKind } from './issuer.js';

const COLUMNS = 'id, issuer, kind, trust_domain, jwks_uri, jwks, audiences, enabled, revision, created_at, updated_at';

/** SQL for trusted issuers. */
export class IssuerStore {
  constructor(private readonly sql: Sql) {}

  async find(id: string, sql: Sql = this.sql): Promise<Issuer | undefined> {
    const { rows } = await sql.query<IssuerRow>(`SELECT ${COLUMNS} FROM issuers WHERE id = $1`, [id]);
    return rows[0] && toIssuer(rows[0]);
  }

  /** The issuer whose tokens carry `iss`; at most one, by the unique constraint. */
  async findByIssuer(iss: string, sql: Sql = this.sql): Promise<Issuer | undefined> {
    const { rows } = await sql.query<IssuerRow>(`SELECT ${COLUMNS} FROM issuers WHERE issuer = $1`, [iss], 'tollgate_issuer_by_iss');
    return rows[0] && toIssuer(rows[0]);
  }

  /** Reads an issuer under a share lock: a workload bound to it commits only while it still stands. */
  async findForBinding(id: string, sql: Sql): Promise<Issuer | undefined> {
    const { rows } = await sql.query<IssuerRow>(`SELECT ${COLUMNS} FROM issuers WHERE id = $1 FOR SHARE`, [id]);
    return rows[0] && toIssuer(rows[0]);
  }

  /** The id of another issuer already trusted under `iss`, if any. */
  async otherWithIssuer(id: string, iss: string, sql: Sql): Promise<string | undefined> {
    const { rows } = await sql.query<{ id: string }>('SELECT id FROM issuers WHERE issuer = $1 AND id <> $2', [iss, id]);
    return rows[0]?.id;
  }

  /**
   * Creates an issuer or replaces its definition with a revision bump. An existing issuer keeps its
   * enabled state unless `enabled` says otherwise, so re-applying configuration cannot undo a DELETE.
   */
  async put(
    id: string,
    definition: IssuerDefinition,
    enabled: boolean | undefined,
    sql: Sql,
  ): Promise<{ issuer: Issuer; created: boolean }> {
    const { rows } = await sql.query<IssuerRow & { created: boolean }>(
      `INSERT INTO issuers (id, issuer, kind, trust_domain, jwks_uri, jwks, audiences, enabled)
       VALUES ($1, $2, $3, $4, $5, $6, $7, coalesce($8::boolean, true))
       ON CONFLICT (id) DO UPDATE SET issuer = EXCLUDED.issuer, kind = EXCLUDED.kind, trust_domain = EXCLUDED.trust_domain,
         jwks_uri = EXCLUDED.jwks_uri, jwks = EXCLUDED.jwks, audiences = EXCLUDED.audiences,
         enabled = coalesce($8::boolean, issuers.enabled), revision = issuers.revision + 1, updated_at = now()
       RETURNING ${COLUMNS}, (xmax = 0) AS created`,
      [
        id,
        definition.issuer,
        definition.kind,
        definition.trustDomain,
        definition.jwksUri,
        definition.jwks === null ? null : JSON.stringify(definition.jwks),
        JSON.stringify(definition.audiences),
        enabled ?? null,
      ],
    );
    const row = rows[0]!;
    return { issuer: toIssuer(row), created: row.created };
  }

  /** Withdraws trust: the row stays (bound workloads and history refer to it), disabled, revision bumped. */
  async disable(id: string, sql: Sql): Promise<Issuer | undefined> {
    const { rows } = await sql.query<IssuerRow>(
      `UPDATE issuers SET enabled = false, revision = revision + 1, updated_at = now() WHERE id = $1 RETURNING ${COLUMNS}`,
      [id],
    );
    return rows[0] && toIssuer(rows[0]);
  }

  async list(sql: Sql = this.sql): Promise<Issuer[]> {
    const { rows } = await sql.query<IssuerRow>(`SELECT ${COLUMNS} FROM issuers ORDER BY id LIMIT 1000`);
    return rows.map(toIssuer);
  }
}

interface IssuerRow {
  id: string;
  issuer: string;
  kind: IssuerKind;
  trust_domain: string | null;
  jwks_uri: string | null;
  jwks: { keys: JWK[] } | null;
  audiences: string[];
  enabled: boolean;
  revision: number;
  created_at: Date;
  updated_at: Date;
}

function toIssuer(row: IssuerRow): Issuer {
  return {
    id: row.id,
    issuer: row.issuer,
    kind: row.kind,
    trustDomain: row.trust_domain,
    jwksUri: row.jwks_uri,
    jwks: row.jwks,
    audiences: row.audiences,
    enabled: row.enabled,
    revision: row.revision,
    createdAt: new Date(row.created_at),
    updatedAt: new Date(row.updated_at),
  };
}
