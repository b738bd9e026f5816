import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Tasks (user journeys) and their event history (opened, intent changes, endings). */
export class Tasks1764115320000 implements MigrationInterface {
  name = 'Tasks1764115320000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE tasks (
        id           uuid PRIMARY KEY,
        workload_id  text NOT NULL REFERENCES workloads (id),
        intent       text NOT NULL,
        subject      text NOT NULL,
        state        text NOT NULL CHECK (state IN ('active', 'completed', 'revoked', 'expired')),
        created_at   timestamptz NOT NULL,
        expires_at   timestamptz NOT NULL,
        ended_at     timestamptz,
        end_reason   text
      )`);
    await q.query('CREATE INDEX tasks_by_workload ON tasks (workload_id, id)');
    await q.query(`CREATE INDEX tasks_active_by_expiry ON tasks (expires_at) WHERE state = 'active'`);
    await q.query(`
      CREATE TABLE task_events (
        id       uuid PRIMARY KEY,
        task_id  uuid NOT NULL REFERENCES tasks (id),
        kind     text NOT NULL,
        intent   text,
        reason   text,
        at       timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query('CREATE INDEX task_events_by_task ON task_events (task_id, id)');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE task_events');
    await q.query('DROP TABLE tasks');
  }
}
