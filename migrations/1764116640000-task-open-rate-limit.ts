import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Opening tasks is rate-limited too (issue 12, finding 11): each POST /v1/tasks writes a task row
 * and an audit event. A workload gets a second token bucket for it, on the same limit as its
 * credential requests, so opening tasks never spends the credential requests' allowance.
 */
export class TaskOpenRateLimit1764116640000 implements MigrationInterface {
  name = 'TaskOpenRateLimit1764116640000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(
      `ALTER TABLE rate_buckets ADD COLUMN bucket text NOT NULL DEFAULT 'credential' CHECK (bucket IN ('credential', 'task_open'))`,
    );
    await q.query('ALTER TABLE rate_buckets DROP CONSTRAINT rate_buckets_pkey');
    await q.query('ALTER TABLE rate_buckets ADD PRIMARY KEY (workload_id, bucket)');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DELETE FROM rate_buckets WHERE bucket <> 'credential'`);
    await q.query('ALTER TABLE rate_buckets DROP CONSTRAINT rate_buckets_pkey');
    await q.query('ALTER TABLE rate_buckets ADD PRIMARY KEY (workload_id)');
    await q.query('ALTER TABLE rate_buckets DROP COLUMN bucket');
  }
}
