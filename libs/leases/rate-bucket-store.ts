import type { Sql } from '../db/index.js';
import type { RateLimit } from '../config/index.js';

/** A workload has one bucket per kind of request: credential requests, and opening tasks. */
export type RateBucket = 'credential' | 'task_open';

export interface Claimed {
  /** Tokens taken from the workload's bucket (0 when it holds less than one). */
  granted: number;
  /** What is left in the bucket after the claim. */
  tokens: number;
}

/** SQL for the per-workload token buckets every replica draws from. */
export class RateBucketStore {
  constructor(private readonly sql: Sql) {}

  /**
   * Refills the workload's bucket by the time passed (database clock, capped at the burst) and takes
   * up to `want` whole tokens from it, in one statement. The row lock makes replicas take turns, so
   * together they never take more than the bucket held. A new bucket starts full.
   */
  async claim(workloadId: string, want: number, limit: RateLimit, bucket: RateBucket = 'credential'): Promise<Claimed> {
    const { rows } = await this.sql.query<{ last_granted: number; tokens: number | string }>(
      `INSERT INTO rate_buckets AS b (workload_id, bucket, tokens, last_granted, refilled_at)
       VALUES ($1, $5, $3::float8 - least($2::int, floor($3::float8))::int, least($2::int, floor($3::float8))::int, now())
       ON CONFLICT (workload_id, bucket) DO UPDATE SET
         last_granted = least($2::int, floor(least($3::float8,
                          b.tokens + $4::float8 * greatest(0, extract(epoch FROM now() - b.refilled_at)::float8))))::int,
         tokens = least($3::float8, b.tokens + $4::float8 * greatest(0, extract(epoch FROM now() - b.refilled_at)::float8))
                  - least($2::int, floor(least($3::float8,
                          b.tokens + $4::float8 * greatest(0, extract(epoch FROM now() - b.refilled_at)::float8))))::int,
         -- A statement that waited for the row lock may carry an older now(): time never runs back.
         refilled_at = greatest(b.refilled_at, now())
       RETURNING last_granted, tokens`,
      [workloadId, want, limit.burst, limit.perSecond, bucket],
      'tollgate_rate_claim',
    );
    const row = rows[0]!;
    return { granted: row.last_granted, tokens: Number(row.tokens) };
  }
}
