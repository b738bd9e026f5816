import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Marks a boundary version as superseded when a newer one is written. A credential permit locks the
 * version it was decided under and requires it to be current, so a permit racing a change (or a
 * DELETE) either commits before the change's revocation sees it, or fails and is decided again.
 */
export class BoundarySuperseded1764115560000 implements MigrationInterface {
  name = 'BoundarySuperseded1764115560000';

  async up(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE boundaries ADD COLUMN superseded_at timestamptz');
    await q.query(`
      UPDATE boundaries b SET superseded_at = b.created_at
       WHERE EXISTS (SELECT 1 FROM boundaries newer WHERE newer.id = b.id AND newer.version > b.version)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE boundaries DROP COLUMN superseded_at');
  }
}
