/**
 * A lease's state as of the database clock and its task: expiry needs no sweeper to take effect,
 * and neither does the end of a task. Every read of a lease's state (introspection, lease listings,
 * decisions with their lease) goes by this one expression.
 *
 * A lease never outlives its task (issuance refuses a lease that would end after it), so a live
 * lease of a task that is no longer active is a revoked one whose row is not rewritten yet: a task
 * that ends commits first (Tasks.complete, Tasks.revoke), and from that commit all its leases read
 * `revoked` at once, however many there are; their rows are revoked just after, in a transaction
 * of their own (or by the sweeper, if the replica died in between). Only live rows pay the lookup
 * of their task, by primary key: a scalar subquery, which PostgreSQL runs per row (an EXISTS may be
 * planned as a hashed scan of every task that is not active, which grows with all history).
 */
export const EFFECTIVE_STATE = `CASE WHEN l.state = 'active' AND l.expires_at <= now() THEN 'expired'
  WHEN l.state IN ('active', 'issuing') AND (SELECT pt.state FROM tasks pt WHERE pt.id = l.task_id) <> 'active' THEN 'revoked'
  ELSE l.state END`;
