import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A task's drift denials move out of its row into rows of their own (issue 15, the denial bench):
 * `task_drift_denials (task_id, decision_id, n)`, one insert per counted denial, `n` its place in
 * the task's count, and `tasks.drift_count`, the count itself, still updated under the task's row
 * lock so that concurrent denials count exactly. Before, the count was the `drift_denials uuid[]`
 * array: past about 120 ids it was toasted and every denial rewrote it whole (up to 16 kB of row
 * and WAL for a threshold of 1,000), so a denial cost more the more denials its task had.
 *
 * `task_drift_denial_ids` lists a task's counted denials for the suspension's audit event. It is
 * VOLATILE so that its query takes a snapshot of its own: the statement that trips the threshold
 * waited for the task's row lock, and the denials counted by the transactions it waited for
 * committed after the statement's own snapshot was taken. The tripping denial itself is passed in
 * (its row is written by the same statement, visible to the function or not depending on the
 * order PostgreSQL runs the statement's parts in).
 *
 * No foreign key to tasks: the rows are written from the task update's RETURNING, tasks are never
 * deleted, and the check would cost each denial a lookup of the row it has just updated.
 */
export class DriftDenialRows1764117150000 implements MigrationInterface {
  name = 'DriftDenialRows1764117150000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE task_drift_denials (
        task_id     uuid NOT NULL,
        decision_id uuid NOT NULL,
        n           int NOT NULL CHECK (n >= 1),
        PRIMARY KEY (task_id, decision_id)
      )`);
    await q.query('ALTER TABLE tasks ADD COLUMN drift_count int NOT NULL DEFAULT 0 CHECK (drift_count >= 0)');
    await q.query(`
      INSERT INTO task_drift_denials (task_id, decision_id, n)
      SELECT t.id, u.decision_id, u.n FROM tasks t, unnest(t.drift_denials) WITH ORDINALITY AS u (decision_id, n)`);
    await q.query(`UPDATE tasks SET drift_count = cardinality(drift_denials) WHERE drift_denials <> '{}'::uuid[]`);
    await q.query('ALTER TABLE tasks DROP COLUMN drift_denials');
    await q.query(`
      CREATE FUNCTION task_drift_denial_ids(task uuid, tripped_by uuid, tripped_n int) RETURNS uuid[]
        LANGUAGE plpgsql VOLATILE AS $$
      BEGIN
        RETURN ARRAY(
          SELECT decision_id FROM (
            SELECT decision_id, n FROM task_drift_denials WHERE task_id = task
            UNION SELECT tripped_by, tripped_n
          ) counted ORDER BY n, decision_id);
      END $$`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP FUNCTION task_drift_denial_ids(uuid, uuid, int)');
    await q.query(`ALTER TABLE tasks ADD COLUMN drift_denials uuid[] NOT NULL DEFAULT '{}'`);
    await q.query(`
      UPDATE tasks t SET drift_denials = ARRAY(SELECT d.decision_id FROM task_drift_denials d WHERE d.task_id = t.id ORDER BY d.n)
       WHERE t.drift_count > 0`);
    await q.query('ALTER TABLE tasks DROP COLUMN drift_count');
    await q.query('DROP TABLE task_drift_denials');
  }
}
