import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Expiry without rewrites (issue 15): a lease past its time reads `expired` from the database clock
 * (EFFECTIVE_STATE), so the sweeper no longer rewrites the rows of leases that have nothing to
 * revoke at a source. It claims only `external` ones (Vault, STS: the source must be told), and
 * finds them through this index; the index of all active leases by expiry stays for the live count.
 */
export class ExpiryWithoutRewrites1764116850000 implements MigrationInterface {
  name = 'ExpiryWithoutRewrites1764116850000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE INDEX leases_external_due ON leases (expires_at) WHERE state = 'active' AND external`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP INDEX leases_external_due');
  }
}
