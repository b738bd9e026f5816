import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Workloads (their registered public keys) and hashed admin keys. */
export class Identity1764115200000 implements MigrationInterface {
  name = 'Identity1764115200000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE workloads (
        id          text PRIMARY KEY,
        jwks        jsonb NOT NULL,
        enabled     boolean NOT NULL DEFAULT true,
        revision    integer NOT NULL DEFAULT 1,
        created_at  timestamptz NOT NULL DEFAULT now(),
        updated_at  timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`
      CREATE TABLE admin_keys (
        key_hash    text PRIMARY KEY,
        role        text NOT NULL CHECK (role IN ('admin', 'reviewer')),
        label       text NOT NULL,
        created_at  timestamptz NOT NULL DEFAULT now()
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE admin_keys');
    await q.query('DROP TABLE workloads');
  }
}
