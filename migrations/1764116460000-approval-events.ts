import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Approval events on GET /v1/events (approval.requested, approval.approved, approval.denied), so a
 * reviewer's console hears of a request the moment it waits instead of polling. They share the
 * revocation feed's ordering and resumption; `audience` stays null, so no resource server sees them.
 */
export class ApprovalEvents1764116460000 implements MigrationInterface {
  name = 'ApprovalEvents1764116460000';

  async up(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE revocation_events ADD COLUMN approval_id uuid, ADD COLUMN boundary_id text');
    await q.query('ALTER TABLE revocation_events DROP CONSTRAINT revocation_events_type_check');
    await q.query(`ALTER TABLE revocation_events ADD CONSTRAINT revocation_events_type_check
      CHECK (type IN ('lease.revoked', 'task.ended', 'workload.revoked', 'lease.revoke_failed',
                      'approval.requested', 'approval.approved', 'approval.denied'))`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DELETE FROM revocation_events WHERE type LIKE 'approval.%'`);
    await q.query('ALTER TABLE revocation_events DROP CONSTRAINT revocation_events_type_check');
    await q.query(`ALTER TABLE revocation_events ADD CONSTRAINT revocation_events_type_check
      CHECK (type IN ('lease.revoked', 'task.ended', 'workload.revoked', 'lease.revoke_failed'))`);
    await q.query('ALTER TABLE revocation_events DROP COLUMN boundary_id, DROP COLUMN approval_id');
  }
}
