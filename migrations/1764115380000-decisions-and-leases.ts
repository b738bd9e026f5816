import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Decisions (every credential request, permitted or not) and leases (every issued credential).
 * A lease row is the truth for introspection: its state and expires_at decide, not the token.
 */
export class DecisionsAndLeases1764115380000 implements MigrationInterface {
  name = 'DecisionsAndLeases1764115380000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE decisions (
        id                uuid PRIMARY KEY,
        task_id           uuid REFERENCES tasks (id),
        workload_id       text NOT NULL,
        boundary_id       text,
        boundary_version  integer,
        action            text,
        resource          text,
        outcome           text NOT NULL CHECK (outcome IN ('permit', 'deny', 'pending')),
        reasons           jsonb NOT NULL DEFAULT '[]',
        params            jsonb,
        purpose           text,
        requested_ttl     integer,
        at                timestamptz NOT NULL
      )`);
    await q.query('CREATE INDEX decisions_by_task ON decisions (task_id, id)');
    await q.query('CREATE INDEX decisions_by_workload ON decisions (workload_id, id)');
    await q.query('CREATE INDEX decisions_by_boundary ON decisions (boundary_id, id)');
    await q.query(`
      CREATE TABLE leases (
        id                uuid PRIMARY KEY,
        task_id           uuid NOT NULL REFERENCES tasks (id),
        workload_id       text NOT NULL,
        boundary_id       text NOT NULL,
        boundary_version  integer NOT NULL,
        decision_id       uuid NOT NULL REFERENCES decisions (id),
        action            text NOT NULL,
        resource          text,
        credential_kind   text NOT NULL,
        issued_at         timestamptz NOT NULL,
        expires_at        timestamptz NOT NULL,
        state             text NOT NULL CHECK (state IN ('active', 'revoked', 'expired')),
        revoked_at        timestamptz,
        revoke_reason     text,
        external_handle   text,
        FOREIGN KEY (boundary_id, boundary_version) REFERENCES boundaries (id, version),
        CHECK (expires_at > issued_at)
      )`);
    await q.query('CREATE INDEX leases_by_task ON leases (task_id, id)');
    await q.query('CREATE INDEX leases_by_workload ON leases (workload_id, id)');
    await q.query('CREATE INDEX leases_by_boundary ON leases (boundary_id, id)');
    await q.query(`CREATE INDEX leases_active_by_expiry ON leases (expires_at) WHERE state = 'active'`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE leases');
    await q.query('DROP TABLE decisions');
  }
}
