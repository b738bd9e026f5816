import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * DPoP proofs already used (RFC 9449 §11.1): one row per proof, keyed by a hash of the proof key's
 * thumbprint and its jti, kept until the proof's iat window has passed. A primary key shared by
 * every replica makes "first use wins" hold across replicas.
 */
export class DpopProofs1764115750000 implements MigrationInterface {
  name = 'DpopProofs1764115750000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE dpop_proofs (
        jti_hash    text PRIMARY KEY,
        expires_at  timestamptz NOT NULL
      )`);
    await q.query('CREATE INDEX dpop_proofs_by_expiry ON dpop_proofs (expires_at)');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE dpop_proofs');
  }
}
