import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Signing-key rotation: a `next` key is published before it signs anything, the `active` key
 * signs, a `retired` key stays published until `publish_until` (when everything it signed has
 * expired). A retired key's private half is destroyed, hence the nullable column.
 */
export class SigningKeyRotation1764115740000 implements MigrationInterface {
  name = 'SigningKeyRotation1764115740000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE signing_keys DROP CONSTRAINT IF EXISTS signing_keys_state_check`);
    await q.query(`ALTER TABLE signing_keys ADD CONSTRAINT signing_keys_state_check CHECK (state IN ('next', 'active', 'retired'))`);
    await q.query(`ALTER TABLE signing_keys ALTER COLUMN private_key_encrypted DROP NOT NULL`);
    await q.query(`ALTER TABLE signing_keys ADD COLUMN activated_at timestamptz`);
    await q.query(`ALTER TABLE signing_keys ADD COLUMN publish_until timestamptz`);
    await q.query(`UPDATE signing_keys SET activated_at = created_at WHERE state IN ('active', 'retired')`);
    await q.query(`CREATE UNIQUE INDEX signing_keys_one_next ON signing_keys ((true)) WHERE state = 'next'`);
    await q.query(
      `ALTER TABLE signing_keys ADD CONSTRAINT signing_keys_private_kept CHECK (state = 'retired' OR private_key_encrypted IS NOT NULL)`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DELETE FROM signing_keys WHERE state = 'next' OR private_key_encrypted IS NULL`);
    await q.query(`ALTER TABLE signing_keys DROP CONSTRAINT signing_keys_private_kept`);
    await q.query(`DROP INDEX signing_keys_one_next`);
    await q.query(`ALTER TABLE signing_keys DROP COLUMN publish_until`);
    await q.query(`ALTER TABLE signing_keys DROP COLUMN activated_at`);
    await q.query(`ALTER TABLE signing_keys ALTER COLUMN private_key_encrypted SET NOT NULL`);
    await q.query(`ALTER TABLE signing_keys DROP CONSTRAINT signing_keys_state_check`);
    await q.query(`ALTER TABLE signing_keys ADD CONSTRAINT signing_keys_state_check CHECK (state IN ('active', 'retired'))`);
  }
}
