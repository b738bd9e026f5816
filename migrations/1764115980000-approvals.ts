import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Human approval (step-up). A boundary may carry an approval rule (a Cedar condition and how long
 * an approval stays usable). A request the rule catches leaves a `pending` decision (the decisions
 * outcome constraint has allowed 'pending' since the decisions table was created) and an approval
 * row, bound to the exact request: workload, task, boundary, action, resource, the hash of params,
 * and the task's intent at the time. The row is single-use: `used` is set by the very statement that
 * commits the permit. Expiry and the task's end need no sweeper: reads derive them (see
 * libs/approvals/approval-store.ts).
 */
export class Approvals1764115980000 implements MigrationInterface {
  name = 'Approvals1764115980000';

  async up(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE boundaries ADD COLUMN approval jsonb');
    await q.query(`
      CREATE TABLE approvals (
        id                  uuid PRIMARY KEY,
        task_id             uuid NOT NULL REFERENCES tasks (id),
        workload_id         text NOT NULL,
        boundary_id         text NOT NULL,
        boundary_version    integer NOT NULL,
        action              text NOT NULL,
        resource            text,
        params              jsonb,
        params_hash         text NOT NULL,
        purpose             text,
        intent              text NOT NULL,
        status              text NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'used')),
        decision_id         uuid NOT NULL REFERENCES decisions (id),
        requested_at        timestamptz NOT NULL,
        expires_at          timestamptz NOT NULL,
        decided_at          timestamptz,
        decided_by          text,
        reason              text,
        used_at             timestamptz,
        lease_id            uuid,
        FOREIGN KEY (boundary_id, boundary_version) REFERENCES boundaries (id, version),
        CHECK (expires_at > requested_at)
      )`);
    await q.query('CREATE INDEX approvals_by_task ON approvals (task_id, id)');
    await q.query('CREATE INDEX approvals_by_workload ON approvals (workload_id, id)');
    await q.query('CREATE INDEX approvals_by_boundary ON approvals (boundary_id, id)');
    await q.query(`CREATE INDEX approvals_open ON approvals (id) WHERE status IN ('pending', 'approved')`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE approvals');
    await q.query('ALTER TABLE boundaries DROP COLUMN approval');
  }
}
