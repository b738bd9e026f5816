import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Revocation events for resource servers (GET /v1/events). `id` is taken when the event is written;
 * `seq`, the order clients see and resume from, is given once the writing transaction is over, so a
 * transaction that commits late cannot slip an event in behind a reader's position.
 */
export class RevocationEvents1764115620000 implements MigrationInterface {
  name = 'RevocationEvents1764115620000';

  async up(q: QueryRunner): Promise<void> {
    await q.query('CREATE SEQUENCE revocation_event_seq');
    await q.query(`
      CREATE TABLE revocation_events (
        id           bigserial PRIMARY KEY,
        seq          bigint UNIQUE,
        type         text NOT NULL CHECK (type IN ('lease.revoked', 'task.ended', 'workload.revoked')),
        lease_id     uuid,
        task_id      uuid,
        workload_id  text,
        reason       text NOT NULL,
        at           timestamptz NOT NULL DEFAULT now(),
        txid         xid8 NOT NULL DEFAULT pg_current_xact_id()
      )`);
    await q.query('CREATE INDEX revocation_events_unsequenced ON revocation_events (id) WHERE seq IS NULL');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE revocation_events');
    await q.query('DROP SEQUENCE revocation_event_seq');
  }
}
