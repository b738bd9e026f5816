import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Two follow-ups of Cedar and approvals.
 *
 * The global policy set's version as one row: bumped with every policy write (in its
 * transaction), so a credential request reads and re-checks the policy set it was decided under in
 * O(1) instead of hashing the policies table in every permit and denial. `enabled` counts the
 * enabled policy sets: with none, the key is '' and requests without a boundary policy skip Cedar.
 *
 * A permit records the approval it used (`decisions.approval_id`): policies read `context.approved`,
 * so a what-if replay must know which recorded permits were approved.
 */
export class CedarApprovals1764116220000 implements MigrationInterface {
  name = 'CedarApprovals1764116220000';

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
    await q.query('ALTER TABLE decisions ADD COLUMN approval_id uuid');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE decisions DROP COLUMN approval_id');
    await q.query('DROP TABLE policy_set_version');
  }
}
