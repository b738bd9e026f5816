import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Trusted issuers (SPIFFE, Kubernetes service-account and OIDC issuers, with a JWKS URL or static
 * public keys), and workloads bound to one of them by subject instead of registered keys.
 */
export class Issuers1764115680000 implements MigrationInterface {
  name = 'Issuers1764115680000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE issuers (
        id            text PRIMARY KEY,
        issuer        text NOT NULL UNIQUE,
        kind          text NOT NULL CHECK (kind IN ('spiffe', 'kubernetes', 'oidc')),
        trust_domain  text,
        jwks_uri      text,
        jwks          jsonb,
        audiences     jsonb NOT NULL,
        enabled       boolean NOT NULL DEFAULT true,
        revision      integer NOT NULL DEFAULT 1,
        created_at    timestamptz NOT NULL DEFAULT now(),
        updated_at    timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT issuers_one_key_source CHECK ((jwks_uri IS NULL) <> (jwks IS NULL)),
        CONSTRAINT issuers_trust_domain_iff_spiffe CHECK ((kind = 'spiffe') = (trust_domain IS NOT NULL))
      )`);
    await q.query('ALTER TABLE workloads ADD COLUMN issuer_id text REFERENCES issuers (id)');
    await q.query('ALTER TABLE workloads ADD COLUMN subject text');
    await q.query('ALTER TABLE workloads ALTER COLUMN jwks DROP NOT NULL');
    await q.query(`
      ALTER TABLE workloads ADD CONSTRAINT workloads_one_mode CHECK (
        (jwks IS NOT NULL AND issuer_id IS NULL AND subject IS NULL) OR
        (jwks IS NULL AND issuer_id IS NOT NULL AND subject IS NOT NULL))`);
    await q.query('CREATE UNIQUE INDEX workloads_by_binding ON workloads (issuer_id, subject)');
  }

  /** Refuses (jwks NOT NULL fails) while federated workloads exist: going down would orphan them. */
  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP INDEX workloads_by_binding');
    await q.query('ALTER TABLE workloads DROP CONSTRAINT workloads_one_mode');
    await q.query('ALTER TABLE workloads ALTER COLUMN jwks SET NOT NULL');
    await q.query('ALTER TABLE workloads DROP COLUMN subject');
    await q.query('ALTER TABLE workloads DROP COLUMN issuer_id');
    await q.query('DROP TABLE issuers');
  }
}
