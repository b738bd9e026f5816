import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Tool boundaries: every change is a new row (id, version); leases point at the version. */
export class Boundaries1764115260000 implements MigrationInterface {
  name = 'Boundaries1764115260000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE boundaries (
        id           text NOT NULL,
        version      integer NOT NULL CHECK (version > 0),
        tool         text NOT NULL,
        actions      jsonb NOT NULL,
        intents      jsonb NOT NULL,
        default_ttl  integer NOT NULL,
        max_ttl      integer NOT NULL,
        credential   jsonb NOT NULL,
        sensitivity  text NOT NULL,
        enabled      boolean NOT NULL,
        created_at   timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (id, version),
        CHECK (default_ttl > 0 AND default_ttl <= max_ttl AND max_ttl <= 3600)
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE boundaries');
  }
}
