import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The drift guard and per-workload rate limits. A task remembers the ids of the policy-style
 * denials it collected (updated under the task's row lock, so concurrent denials count exactly);
 * a boundary may lower or raise the threshold; each workload has one shared token bucket that
 * every replica draws batches of tokens from.
 */
export class DriftAndRateLimits1764115920000 implements MigrationInterface {
  name = 'DriftAndRateLimits1764115920000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE tasks ADD COLUMN drift_denials uuid[] NOT NULL DEFAULT '{}'`);
    await q.query('ALTER TABLE boundaries ADD COLUMN drift_threshold int CHECK (drift_threshold BETWEEN 1 AND 1000)');
    await q.query(`
      CREATE TABLE rate_buckets (
        workload_id   text PRIMARY KEY,
        tokens        float8 NOT NULL,
        last_granted  int NOT NULL,
        refilled_at   timestamptz NOT NULL
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE rate_buckets');
    await q.query('ALTER TABLE boundaries DROP COLUMN drift_threshold');
    await q.query('ALTER TABLE tasks DROP COLUMN drift_denials');
  }
}
