import type { Sql } from '../db/index.js';

/** SQL for the DPoP proofs already used (replay protection shared by every replica). */
export class DpopProofStore {
  constructor(private readonly sql: Sql) {}

  /**
   * Records a proof's first use; false when it was used before (on any replica). One statement:
   * the primary key decides between two replicas racing with the same proof.
   */
  async claim(jtiHash: string, expiresAt: number): Promise<boolean> {
    const { count } = await this.sql.query(
      `INSERT INTO dpop_proofs (jti_hash, expires_at) VALUES ($1, to_timestamp($2::float8 / 1000)) ON CONFLICT DO NOTHING`,
      [jtiHash, expiresAt],
      'tollgate_dpop_claim',
    );
    return count === 1;
  }

  /**
   * Forgets proofs whose iat window is over (with a margin for replicas' clocks): from then on
   * their iat alone refuses them. Bounded per call.
   */
  async sweep(limit: number, marginMs: number): Promise<number> {
    const { count } = await this.sql.query(
      `DELETE FROM dpop_proofs WHERE jti_hash IN (
         SELECT jti_hash FROM dpop_proofs WHERE expires_at < now() - make_interval(secs => $2::float8 / 1000) LIMIT $1)`,
      [limit, marginMs],
    );
    return count;
  }
}
