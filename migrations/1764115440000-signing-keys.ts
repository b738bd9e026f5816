import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Tollgate's own signing keys; the private half only ever stored encrypted under the KEK. */
export class SigningKeys1764115440000 implements MigrationInterface {
  name = 'SigningKeys1764115440000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE signing_keys (
        kid                    text PRIMARY KEY,
        alg                    text NOT NULL,
        public_jwk             jsonb NOT NULL,
        private_key_encrypted  text NOT NULL,
        state                  text NOT NULL CHECK (state IN ('active', 'retired')),
        created_at             timestamptz NOT NULL DEFAULT now(),
        retired_at             timestamptz
      )`);
    await q.query(`CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys ((true)) WHERE state = 'active'`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE signing_keys');
  }
}
