import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Append-only audit events: the database itself refuses UPDATE and DELETE on them. */
export class AuditEvents1764115500000 implements MigrationInterface {
  name = 'AuditEvents1764115500000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE audit_events (
        id        uuid PRIMARY KEY,
        at        timestamptz NOT NULL DEFAULT now(),
        kind      text NOT NULL,
        actor     text NOT NULL,
        task_id   uuid,
        lease_id  uuid,
        data      jsonb NOT NULL DEFAULT '{}'
      )`);
    await q.query('CREATE INDEX audit_events_by_task ON audit_events (task_id, id)');
    await q.query(`
      CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION 'audit_events is append-only';
      END
      $$`);
    await q.query(`
      CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
      FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE audit_events');
    await q.query('DROP FUNCTION audit_events_append_only()');
  }
}
