import type { MigrationInterface, QueryRunner } from 'typeorm';
import { LINK_ONCE } from './1764116340000-audit-chain.js';
import { AUDIT_EVENTS_MONTH, HISTORY_TABLES, historyPartitionFunctions } from './1764116910000-history-partitions.js';

/**
 * The audit chain's links move out of the events into a table of their own (issue 15): `audit_links
 * (event_id, xid, seq, prev_hash, hash)`, one row per linked event, written by the chainer with an
 * INSERT. Before, linking an event was an UPDATE of its row: a second, full version of every event
 * (data and all), five more index entries, the append-only trigger comparing both versions, and
 * later vacuum work; measured, about a quarter of PostgreSQL's CPU per issuance and the worst of the
 * issuance p99 once a second. Now `audit_events` is strictly append-only (no UPDATE at all) and a
 * link is a narrow row in a table that is append-only too.
 *
 * The hashes are hex compared byte by byte (COLLATE "C"): the fork guard's unique index compares
 * every new link's prev_hash with its neighbours, and a locale's collation made the INSERT of 500
 * links take 16 ms instead of 10.
 *
 * The chain is unchanged: the same hashes over the same content, in the same (xid, seq) order.
 * The head is the last link in that order (`audit_links_in_chain_order`); the chainer's work is the
 * events after it whose writer has ended (`audit_events_in_chain_order`, one index on every event,
 * where there were two partial ones). The fork guard (one successor per event) is a unique
 * `prev_hash` per month of links, as it was per month of events.
 *
 * Links are partitioned like the events, by event id and month, so `history prune` drops a month
 * of links with its month of events. No foreign key to audit_events: the chainer only links events
 * it has just read, the check would cost every link a lookup locking every month of events, and
 * the verifier finds a link without its event anyway (the next event's prev_hash names no event).
 */
export class AuditLinks1764117090000 implements MigrationInterface {
  name = 'AuditLinks1764117090000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE audit_links (
        event_id  uuid NOT NULL,
        xid       xid8 NOT NULL,
        seq       bigint NOT NULL,
        prev_hash text COLLATE "C" NOT NULL CHECK (prev_hash ~ '^[0-9a-f]{64}$'),
        hash      text COLLATE "C" NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$'),
        PRIMARY KEY (event_id)
      ) PARTITION BY RANGE (event_id)`);
    await q.query('CREATE INDEX audit_links_in_chain_order ON audit_links (xid, seq)');
    await q.query('CREATE TABLE audit_links_default PARTITION OF audit_links DEFAULT');
    await q.query('CREATE UNIQUE INDEX audit_links_default_one_successor ON audit_links_default (prev_hash)');
    await q.query(
      'CREATE TRIGGER audit_links_default_no_truncate BEFORE TRUNCATE ON audit_links_default FOR EACH STATEMENT EXECUTE FUNCTION refuse_change()',
    );
    for (const statement of historyPartitionFunctions([...HISTORY_TABLES, 'audit_links'], LINKS_MONTH)) await q.query(statement);
    // A month of links for every month of events there is.
    await q.query(`
      SELECT tollgate_history_partition(to_date(substr(c.relname, 15, 4) || substr(c.relname, 20, 2), 'YYYYMM')::timestamp)
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
       WHERE i.inhparent = 'audit_events'::regclass AND c.relname ~ '^audit_events_y[0-9]{4}m[0-9]{2}$'
       ORDER BY c.relname`);
    await q.query(`INSERT INTO audit_links SELECT id, xid, seq, prev_hash, hash FROM audit_events WHERE hash IS NOT NULL`);

    // The events lose their link columns (with the partial indexes, the per-month fork guards and
    // the "linked whole" check on them) and every UPDATE.
    await q.query('DROP TRIGGER audit_events_append_only ON audit_events');
    await q.query('DROP INDEX audit_events_chained');
    await q.query('DROP INDEX audit_events_unchained');
    await q.query('ALTER TABLE audit_events DROP CONSTRAINT audit_events_linked_whole, DROP COLUMN prev_hash, DROP COLUMN hash');
    await q.query('DROP FUNCTION audit_events_append_only()');
    await q.query('CREATE INDEX audit_events_in_chain_order ON audit_events (xid, seq)');
    for (const table of ['audit_events', 'audit_links']) {
      await q.query(
        `CREATE TRIGGER ${table}_append_only BEFORE UPDATE OR DELETE ON ${table} FOR EACH ROW EXECUTE FUNCTION refuse_change()`,
      );
    }
    await q.query(
      'CREATE TRIGGER audit_links_no_truncate BEFORE TRUNCATE ON audit_links FOR EACH STATEMENT EXECUTE FUNCTION refuse_change()',
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TRIGGER audit_events_append_only ON audit_events');
    await q.query('DROP INDEX audit_events_in_chain_order');
    await q.query(`
      ALTER TABLE audit_events
        ADD COLUMN prev_hash text CHECK (prev_hash ~ '^[0-9a-f]{64}$'),
        ADD COLUMN hash text CHECK (hash ~ '^[0-9a-f]{64}$'),
        ADD CONSTRAINT audit_events_linked_whole CHECK ((prev_hash IS NULL) = (hash IS NULL))`);
    await q.query(`UPDATE audit_events a SET prev_hash = l.prev_hash, hash = l.hash FROM audit_links l WHERE l.event_id = a.id`);
    await q.query('CREATE INDEX audit_events_chained ON audit_events (xid, seq) WHERE hash IS NOT NULL');
    await q.query('CREATE INDEX audit_events_unchained ON audit_events (xid, seq) WHERE hash IS NULL');
    // The fork guard again, one per partition of events (the DEFAULT one too), as migration 1764116910000 made them.
    const parts = (await q.query(
      `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'audit_events'::regclass ORDER BY 1`,
    )) as { name: string }[];
    for (const { name } of parts) {
      await q.query(`CREATE UNIQUE INDEX ${name}_one_successor ON ${name} (prev_hash) WHERE prev_hash IS NOT NULL`);
    }
    await q.query('DROP TABLE audit_links');
    for (const statement of historyPartitionFunctions(HISTORY_TABLES, AUDIT_EVENTS_MONTH)) await q.query(statement);
    await q.query(LINK_ONCE);
    await q.query(`
      CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
      FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()`);
  }
}

/** What a month of audit_events and of audit_links gets beyond its table (PL/pgSQL). */
const LINKS_MONTH = `
          IF t = 'audit_events' THEN
            EXECUTE format('CREATE UNIQUE INDEX %I ON %I (seq)', part || '_seq', part);
          END IF;
          IF t = 'audit_links' THEN
            EXECUTE format('CREATE UNIQUE INDEX %I ON %I (prev_hash)', part || '_one_successor', part);
          END IF;`;
