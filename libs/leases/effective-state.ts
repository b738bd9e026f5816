/**
 * A lease's state as of the database clock: expiry needs no sweeper to take effect. Every read of
 * a lease's state (lease listings, decisions with their lease) goes by this one expression.
 */
export const EFFECTIVE_STATE = `CASE WHEN l.state = 'active' AND l.expires_at <= now() THEN 'expired' ELSE l.state END`;
