import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Cedar policies. Global policy sets are versioned like boundaries (a change is a new row, the old
 * one marked superseded; DELETE writes a disabled version); a boundary's own policy rides on its
 * boundary version. Decisions record the policies that decided them and what a what-if replay needs
 * that the row did not hold: the task's intent and subject, its age and denials at decision time.
 */
export class CedarPolicies1764115860000 implements MigrationInterface {
  name = 'CedarPolicies1764115860000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE policies (
        id             text NOT NULL,
        version        integer NOT NULL,
        policy         text NOT NULL,
        description    text,
        enabled        boolean NOT NULL,
        created_at     timestamptz NOT NULL DEFAULT now(),
        superseded_at  timestamptz,
        PRIMARY KEY (id, version)
      )`);
    await q.query('CREATE INDEX policies_current ON policies (id) WHERE superseded_at IS NULL');
    await q.query('ALTER TABLE boundaries ADD COLUMN policy text');
    await q.query(`
      ALTER TABLE decisions
        ADD COLUMN policies jsonb,
        ADD COLUMN intent text,
        ADD COLUMN subject text,
        ADD COLUMN task_age_s integer,
        ADD COLUMN denials_in_task integer`);
    await q.query('CREATE INDEX decisions_by_time ON decisions (at, id)');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP INDEX decisions_by_time');
    await q.query(`
      ALTER TABLE decisions
        DROP COLUMN policies, DROP COLUMN intent, DROP COLUMN subject, DROP COLUMN task_age_s, DROP COLUMN denials_in_task`);
    await q.query('ALTER TABLE boundaries DROP COLUMN policy');
    await q.query('DROP TABLE policies');
  }
}
