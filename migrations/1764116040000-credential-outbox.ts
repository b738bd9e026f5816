import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The durable outbox for credentials that live at a source (Vault leases, STS sessions). Such a
 * lease is committed `issuing` before the source is called, becomes `active` once the source's
 * handle is recorded, and on revocation or expiry waits in `revoking` until the source confirms
 * (then `revoked` or `expired`). Failed source calls are retried at `revoke_next_at`; after too many
 * the lease is `revoke_failed`, retried daily. Leases of Tollgate's own JWTs never leave
 * active/revoked/expired: `external` is false and none of these columns are touched.
 */
export class CredentialOutbox1764116040000 implements MigrationInterface {
  name = 'CredentialOutbox1764116040000';

  async up(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE leases DROP CONSTRAINT leases_state_check');
    await q.query(`ALTER TABLE leases ADD CONSTRAINT leases_state_check
      CHECK (state IN ('issuing', 'active', 'revoking', 'revoked', 'revoke_failed', 'expired'))`);
    await q.query('ALTER TABLE leases ADD COLUMN external boolean NOT NULL DEFAULT false');
    await q.query('ALTER TABLE leases ADD COLUMN revoke_attempts integer NOT NULL DEFAULT 0');
    await q.query('ALTER TABLE leases ADD COLUMN revoke_next_at timestamptz');
    await q.query('ALTER TABLE leases ADD COLUMN revoke_error text');
    // The outbox's work queue: small (only leases waiting on a source), read by due time.
    await q.query(`CREATE INDEX leases_outbox_due ON leases (revoke_next_at) WHERE state IN ('revoking', 'revoke_failed')`);
    await q.query(`CREATE INDEX leases_issuing ON leases (issued_at) WHERE state = 'issuing'`);
    await q.query('ALTER TABLE revocation_events DROP CONSTRAINT revocation_events_type_check');
    await q.query(`ALTER TABLE revocation_events ADD CONSTRAINT revocation_events_type_check
      CHECK (type IN ('lease.revoked', 'task.ended', 'workload.revoked', 'lease.revoke_failed'))`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DELETE FROM revocation_events WHERE type = 'lease.revoke_failed'`);
    await q.query('ALTER TABLE revocation_events DROP CONSTRAINT revocation_events_type_check');
    await q.query(`ALTER TABLE revocation_events ADD CONSTRAINT revocation_events_type_check
      CHECK (type IN ('lease.revoked', 'task.ended', 'workload.revoked'))`);
    await q.query('DROP INDEX leases_issuing');
    await q.query('DROP INDEX leases_outbox_due');
    await q.query(
      'ALTER TABLE leases DROP COLUMN revoke_error, DROP COLUMN revoke_next_at, DROP COLUMN revoke_attempts, DROP COLUMN external',
    );
    await q.query(`UPDATE leases SET state = 'revoked' WHERE state IN ('issuing', 'revoking', 'revoke_failed')`);
    await q.query('ALTER TABLE leases DROP CONSTRAINT leases_state_check');
    await q.query(`ALTER TABLE leases ADD CONSTRAINT leases_state_check CHECK (state IN ('active', 'revoked', 'expired'))`);
  }
}
