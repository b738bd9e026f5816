import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A task's context: what the bot knows about the journey when it opens the task (a channel, a
 * conversation id, a ticket), kept with the task for reviewers.
 */
export class TaskContext1764116160000 implements MigrationInterface {
  name = 'TaskContext1764116160000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE tasks ADD COLUMN context jsonb NOT NULL DEFAULT '{}'::jsonb`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE tasks DROP COLUMN context');
  }
}
