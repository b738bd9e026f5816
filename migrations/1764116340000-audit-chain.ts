import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The append-only trigger's function while links lived in the events (until migration
 * 1764117090000): linking an event sets prev_hash and hash once, from NULL, and changes nothing else.
 */
export const LINK_ONCE = `
      CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF TG_OP = 'UPDATE' AND OLD.hash IS NULL AND OLD.prev_hash IS NULL
           AND NEW.hash IS NOT NULL AND NEW.prev_hash IS NOT NULL
           AND to_jsonb(NEW) - 'prev_hash' - 'hash' = to_jsonb(OLD) - 'prev_hash' - 'hash' THEN
          RETURN NEW;
        END IF;
        RAISE EXCEPTION 'audit_events is append-only (an event may only be linked into the chain, once)' USING ERRCODE = 'insufficient_privilege';
      END
      $$`;

/**
 * The audit chain. Every event gets `seq` (from a sequence, by DEFAULT, so every existing INSERT
 * keeps working) and `xid` (the writer's top-level transaction id, also by DEFAULT). The issuing
 * transactions never touch the chain head: one chainer (libs/audit/chainer.ts) links committed rows
 * afterwards by setting `prev_hash` and `hash`, the one UPDATE the append-only trigger allows.
 * Decisions get the same append-only trigger. Existing events get seqs in their time order and the
 * migration's xid, and are chained like new ones.
 */
export class AuditChain1764116340000 implements MigrationInterface {
  name = 'AuditChain1764116340000';

  async up(q: QueryRunner): Promise<void> {
    await q.query('DROP TRIGGER audit_events_append_only ON audit_events');

    await q.query('ALTER TABLE audit_events ADD COLUMN seq bigint');
    await q.query(`
      UPDATE audit_events a SET seq = n.seq
        FROM (SELECT id, row_number() OVER (ORDER BY at, id) AS seq FROM audit_events) n
       WHERE a.id = n.id`);
    await q.query('CREATE SEQUENCE audit_events_seq AS bigint OWNED BY audit_events.seq');
    await q.query(`SELECT setval('audit_events_seq', coalesce((SELECT max(seq) FROM audit_events), 0) + 1, false)`);
    await q.query(`ALTER TABLE audit_events ALTER COLUMN seq SET DEFAULT nextval('audit_events_seq'), ALTER COLUMN seq SET NOT NULL`);
    await q.query('CREATE UNIQUE INDEX audit_events_by_seq ON audit_events (seq)');

    await q.query(`
      ALTER TABLE audit_events
        ADD COLUMN xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
        ADD COLUMN prev_hash text CHECK (prev_hash ~ '^[0-9a-f]{64}$'),
        ADD COLUMN hash text CHECK (hash ~ '^[0-9a-f]{64}$'),
        ADD CONSTRAINT audit_events_linked_whole CHECK ((prev_hash IS NULL) = (hash IS NULL))`);
    // The chain in its order: the head is the last entry of the first index, the chainer's work
    // the start of the second. A fork (two events after the same one) is refused outright.
    await q.query('CREATE INDEX audit_events_chained ON audit_events (xid, seq) WHERE hash IS NOT NULL');
    await q.query('CREATE INDEX audit_events_unchained ON audit_events (xid, seq) WHERE hash IS NULL');
    await q.query('CREATE UNIQUE INDEX audit_events_one_successor ON audit_events (prev_hash) WHERE prev_hash IS NOT NULL');

    await q.query(`
      CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
      END
      $$`);
    await q.query(LINK_ONCE);
    await q.query(`
      CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
      FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()`);
    await q.query(
      `CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events FOR EACH STATEMENT EXECUTE FUNCTION refuse_change()`,
    );
    await q.query(
      `CREATE TRIGGER decisions_append_only BEFORE UPDATE OR DELETE ON decisions FOR EACH ROW EXECUTE FUNCTION refuse_change()`,
    );
    await q.query(`CREATE TRIGGER decisions_no_truncate BEFORE TRUNCATE ON decisions FOR EACH STATEMENT EXECUTE FUNCTION refuse_change()`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TRIGGER decisions_no_truncate ON decisions');
    await q.query('DROP TRIGGER decisions_append_only ON decisions');
    await q.query('DROP TRIGGER audit_events_no_truncate ON audit_events');
    await q.query('DROP TRIGGER audit_events_append_only ON audit_events');
    await q.query('DROP FUNCTION refuse_change()');
    await q.query(`
      CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION 'audit_events is append-only';
      END
      $$`);
    await q.query(`
      ALTER TABLE audit_events
        DROP CONSTRAINT audit_events_linked_whole,
        DROP COLUMN hash, DROP COLUMN prev_hash, DROP COLUMN xid, DROP COLUMN seq`);
    await q.query(`
      CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
      FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()`);
  }
}
