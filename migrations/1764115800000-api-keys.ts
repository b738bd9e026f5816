import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * API keys with roles (admin, reviewer, resource_server), replacing admin_keys: keys are now
 * created and revoked at runtime and looked up by every replica, so they need an id, a revocation
 * time, and for a resource server its audience (the tool) and optional public JWKS for
 * private_key_jwt. Also: the jti of every private_key_jwt client assertion until it expires (so a
 * replay is refused on any replica), and the audience of each lease.revoked event (so a resource
 * server's event stream carries only its own tool's leases).
 */
export class ApiKeys1764115800000 implements MigrationInterface {
  name = 'ApiKeys1764115800000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE api_keys (
        id          uuid PRIMARY KEY,
        key_hash    text NOT NULL UNIQUE,
        role        text NOT NULL CHECK (role IN ('admin', 'reviewer', 'resource_server')),
        audience    text,
        label       text,
        jwks        jsonb,
        created_at  timestamptz NOT NULL DEFAULT now(),
        revoked_at  timestamptz,
        CHECK ((role = 'resource_server') = (audience IS NOT NULL)),
        CHECK (jwks IS NULL OR role = 'resource_server')
      )`);
    // Existing keys keep working under a new id each.
    await q.query(`
      INSERT INTO api_keys (id, key_hash, role, label, created_at)
      SELECT gen_random_uuid(), key_hash, role, label, created_at
        FROM admin_keys`);
    await q.query('DROP TABLE admin_keys');

    await q.query(`
      CREATE TABLE client_assertions (
        client_id   uuid NOT NULL,
        jti         text NOT NULL,
        expires_at  timestamptz NOT NULL,
        PRIMARY KEY (client_id, jti)
      )`);

    await q.query('ALTER TABLE revocation_events ADD COLUMN audience text');
    await q.query(`
      UPDATE revocation_events e SET audience = b.tool
        FROM leases l JOIN boundaries b ON b.id = l.boundary_id AND b.version = l.boundary_version
       WHERE e.lease_id = l.id`);
    await q.query('CREATE INDEX revocation_events_by_audience ON revocation_events (audience, seq) WHERE audience IS NOT NULL');
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP INDEX revocation_events_by_audience');
    await q.query('ALTER TABLE revocation_events DROP COLUMN audience');
    await q.query('DROP TABLE client_assertions');
    await q.query(`
      CREATE TABLE admin_keys (
        key_hash    text PRIMARY KEY,
        role        text NOT NULL CHECK (role IN ('admin', 'reviewer')),
        label       text NOT NULL,
        created_at  timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`
      INSERT INTO admin_keys (key_hash, role, label, created_at)
      SELECT key_hash, role, coalesce(label, ''), created_at FROM api_keys
       WHERE revoked_at IS NULL AND role IN ('admin', 'reviewer')`);
    await q.query('DROP TABLE api_keys');
  }
}
