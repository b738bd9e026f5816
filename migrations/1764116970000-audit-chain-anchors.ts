import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Where the audit chain starts after old history was pruned (`tollgate-broker history prune`):
 * the last dropped event's place in chain order (xid, seq) and its hash, which the first kept event
 * names as its prev_hash. Written in the transaction that drops the partitions; verification walks
 * from the newest anchor instead of the genesis hash. Append-only, like the chain itself; the prune
 * also records the anchor inside the chain (a `history.pruned` event), so a forged anchor row does
 * not match what the chain says.
 */
export class AuditChainAnchors1764116970000 implements MigrationInterface {
  name = 'AuditChainAnchors1764116970000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE audit_chain_anchors (
        id       uuid PRIMARY KEY,
        at       timestamptz NOT NULL DEFAULT now(),
        before   text NOT NULL CHECK (before ~ '^[0-9]{4}-(0[1-9]|1[0-2])$'),
        xid      xid8 NOT NULL,
        seq      bigint NOT NULL,
        hash     text NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$'),
        dropped  bigint NOT NULL CHECK (dropped >= 0),
        actor    text NOT NULL
      )`);
    await q.query('CREATE UNIQUE INDEX audit_chain_anchors_in_order ON audit_chain_anchors (xid, seq)');
    await q.query(
      'CREATE TRIGGER audit_chain_anchors_append_only BEFORE UPDATE OR DELETE ON audit_chain_anchors FOR EACH ROW EXECUTE FUNCTION refuse_change()',
    );
    await q.query(
      'CREATE TRIGGER audit_chain_anchors_no_truncate BEFORE TRUNCATE ON audit_chain_anchors FOR EACH STATEMENT EXECUTE FUNCTION refuse_change()',
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE audit_chain_anchors');
  }
}
