import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A task that ended with live leases left to revoke (issue 15, complete_1000). Ending a task
 * commits first, with `leases_pending` set; its leases read `revoked` from that commit on (a live
 * lease of a task that is no longer active: EFFECTIVE_STATE in libs/leases), however many there
 * are. Their rows are then revoked in a transaction of their own, which clears the flag; a replica
 * that died in between leaves it set, and the sweeper finds the task by it and finishes the job.
 * The partial index holds only the tasks in between, so it is nearly always empty.
 */
export class TaskLeasesPending1764117030000 implements MigrationInterface {
  name = 'TaskLeasesPending1764117030000';

  async up(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE tasks ADD COLUMN leases_pending boolean NOT NULL DEFAULT false');
    await q.query('CREATE INDEX tasks_leases_pending ON tasks (id) WHERE leases_pending');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP INDEX tasks_leases_pending');
    await q.query('ALTER TABLE tasks DROP COLUMN leases_pending');
  }
}
