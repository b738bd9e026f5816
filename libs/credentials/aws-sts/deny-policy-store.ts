import type { AuditEvent } from '../../audit/index.js';
import type { Database } from '../../db/index.js';
import type { ProviderContext } from '../provider.js';

/** What the work under a role's lock may use: the database clock, and the audit log in the lock's transaction. */
export interface HeldRoleLock {
  /** The database clock (ms since the epoch) when the lock was taken: the same on every replica, for pruning. */
  readonly now: number;
  /** Appends an audit event that commits with the lock's transaction. */
  audit(event: AuditEvent): Promise<void>;
}

/**
 * Serialises the read-modify-write of one role's deny policy across every replica: IAM has no
 * conditional write, so two replicas reading the same version and each writing its own addition
 * would lose one. A transaction-scoped PostgreSQL advisory lock keyed by the role ARN does it on
 * the database the replicas already share, is released when the transaction ends (a replica that
 * dies mid-write frees it), and hands the database clock for pruning.
 */
export interface RoleLocks {
  withRoleLock<T>(roleArn: string, work: (lock: HeldRoleLock) => Promise<T>): Promise<T>;
}

/** The role locks on the shared database; audit events written under a lock go through `audit` in its transaction. */
export function databaseRoleLocks(db: Database, audit: ProviderContext['audit']): RoleLocks {
  return {
    withRoleLock: (roleArn, work) =>
      db.transaction(async (tx) => {
        const { rows } = await tx.query<{ now_ms: number | string }>(
          `SELECT (extract(epoch FROM now()) * 1000)::float8 AS now_ms, pg_advisory_xact_lock(hashtextextended($1, 0))`,
          [`tollgate:aws-sts:${roleArn}`],
        );
        return work({ now: Number(rows[0]!.now_ms), audit: (event) => audit(tx, event) });
      }),
  };
}
