import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A workload's own rate limit on credential requests, as the admin wrote it ("30 per minute, 5 at
 * once"); all three columns set, or none (the service's TOLLGATE_RATE_LIMIT applies).
 */
export class WorkloadRateLimits1764116280000 implements MigrationInterface {
  name = 'WorkloadRateLimits1764116280000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE workloads
        ADD COLUMN rate_limit_requests float8,
        ADD COLUMN rate_limit_per text,
        ADD COLUMN rate_limit_burst int,
        ADD CONSTRAINT workloads_rate_limit_check CHECK (
          (rate_limit_requests IS NULL AND rate_limit_per IS NULL AND rate_limit_burst IS NULL)
          OR (rate_limit_requests > 0 AND rate_limit_per IN ('second', 'minute', 'hour') AND rate_limit_burst BETWEEN 1 AND 1000000)
        )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE workloads
        DROP CONSTRAINT workloads_rate_limit_check,
        DROP COLUMN rate_limit_burst,
        DROP COLUMN rate_limit_per,
        DROP COLUMN rate_limit_requests`);
  }
}
