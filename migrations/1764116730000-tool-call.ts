import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The credential names the exact call (issue 14): a lease keeps the digest of its call's params
 * (what the token's `params_digest` says, so introspection can answer with it), and a boundary
 * version may declare, per action, the JSON Schema of the tool's arguments. Leases issued before
 * have no digest (introspection leaves it out); boundaries before declare no schemas.
 */
export class ToolCall1764116730000 implements MigrationInterface {
  name = 'ToolCall1764116730000';

  async up(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE leases ADD COLUMN params_digest text');
    await q.query('ALTER TABLE boundaries ADD COLUMN params_schemas jsonb');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE boundaries DROP COLUMN params_schemas');
    await q.query('ALTER TABLE leases DROP COLUMN params_digest');
  }
}
