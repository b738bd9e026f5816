import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * An approval binds the lease lifetime the reviewer saw (issue 12, finding 9): `ttl` is the lease
 * ttl the request would have had when it was asked (requested or default, capped by the boundary's
 * maximum and the task's time left). The repeat that uses the approval gets at most that, whatever
 * ttl it asks for. Existing approvals get what their request asked for under their boundary version.
 */
export class ApprovalTtl1764116580000 implements MigrationInterface {
  name = 'ApprovalTtl1764116580000';

  async up(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE approvals ADD COLUMN ttl integer');
    await q.query(`
      UPDATE approvals a SET ttl = least(coalesce(d.requested_ttl, b.default_ttl), b.max_ttl)
        FROM decisions d, boundaries b
       WHERE d.id = a.decision_id AND b.id = a.boundary_id AND b.version = a.boundary_version`);
    await q.query('ALTER TABLE approvals ALTER COLUMN ttl SET NOT NULL, ADD CONSTRAINT approvals_ttl_positive CHECK (ttl > 0)');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE approvals DROP COLUMN ttl');
  }
}
