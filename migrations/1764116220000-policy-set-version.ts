import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The global policy set's version as one row: bumped with every policy write (in its
 * transaction), so a credential request reads and re-checks the policy set it was decided under in
 * O(1) instead of hashing the policies table in every permit and denial. `enabled` counts the
 * enabled policy sets: with none, the key is '' and requests without a boundary policy skip Cedar.
 */
export class PolicySetVersion1764116220000 implements MigrationInterface {
  name = 'PolicySetVersion1764116220000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE policy_set_version (
        one      boolean PRIMARY KEY DEFAULT true CHECK (one),
        version  bigint NOT NULL,
        enabled  integer NOT NULL CHECK (enabled >= 0)
      )`);
    // Starts past every version written so far, so no key read before the migration matches again.
    await q.query(`
      INSERT INTO policy_set_version (one, version, enabled)
      SELECT true, (SELECT count(*) FROM policies) + 1,
             (SELECT count(*) FROM policies WHERE superseded_at IS NULL AND enabled)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE policy_set_version');
  }
}
