import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * History retention by time partitions (issue 15): `decisions`, `leases` and `audit_events` become
 * tables partitioned BY RANGE (id), one partition per calendar month (UTC), so pruning old history
 * is dropping a partition (`tollgate-broker history prune`), not deleting rows.
 *
 * Why by id: ids are UUIDv7 (libs/ids), whose first 48 bits are the creation time in ms, and uuid
 * order is byte order, so a month is one id range. The partition key is the primary key, so `id`
 * stays unique across partitions, the foreign keys to `decisions (id)` keep working, and the hot
 * path's `WHERE id = $1` touches one partition (pruned at plan or execution time).
 *
 * What a partitioned table cannot have: a unique index without the key. `audit_events` had two,
 * `(seq)` and the chain's fork guard `(prev_hash)`; each month keeps both as unique indexes of its
 * own (tollgate_history_partition). seq comes from one sequence, so it stays unique anyway; a fork
 * across a month boundary is no longer refused by an index, only by the chainer's lock and its
 * count check, and `GET /v1/audit/verify` still reports one (two events after the same one).
 *
 * One foreign key goes: leases.decision_id → decisions. Checking it against a partitioned
 * `decisions` cost every permit about a fifth more PostgreSQL CPU (bench/coalesce.mjs, permits:
 * the check's cached plan locks every partition of decisions at each execution), and it grows with
 * the number of months. The decision ledger writes a lease and its decision in one statement, so
 * no lease is written without its decision; `history prune` checks that no kept lease refers to a
 * decision of a month it drops. approvals.decision_id → decisions stays (an approval is rare).
 *
 * A DEFAULT partition per table takes whatever no month holds (ids not UUIDv7, clocks far off), so
 * no insert can fail for want of a partition. Months are made ahead by
 * tollgate_ensure_history_partitions, which the broker's maintenance duty calls (SECURITY DEFINER:
 * a service running without DDL rights can still make next month's partitions).
 *
 * The existing rows are copied into the new tables in this transaction (months from the data's
 * oldest UUIDv7 up to ten years back; older or non-v7 ids go to the DEFAULT partition).
 */

interface Shape {
  /** Indexes of the plain table, recreated on the partitioned one (and back). */
  indexes: string[];
  /** Unique indexes a partitioned table cannot have: on the parent when plain, per month otherwise. */
  plainOnly: string[];
  /** Foreign keys this table holds. */
  foreignKeys: string[];
  /** Foreign keys it holds only while plain (see the class comment). */
  plainForeignKeys: string[];
  triggers: string[];
}

const SHAPES: Record<'decisions' | 'leases' | 'audit_events', Shape> = {
  decisions: {
    indexes: [
      'CREATE INDEX decisions_by_task ON decisions (task_id, id)',
      'CREATE INDEX decisions_by_workload ON decisions (workload_id, id)',
      'CREATE INDEX decisions_by_boundary ON decisions (boundary_id, id)',
      'CREATE INDEX decisions_by_time ON decisions (at, id)',
    ],
    plainOnly: [],
    foreignKeys: ['ALTER TABLE decisions ADD CONSTRAINT decisions_task_id_fkey FOREIGN KEY (task_id) REFERENCES tasks (id)'],
    plainForeignKeys: [],
    triggers: [
      'CREATE TRIGGER decisions_append_only BEFORE UPDATE OR DELETE ON decisions FOR EACH ROW EXECUTE FUNCTION refuse_change()',
      'CREATE TRIGGER decisions_no_truncate BEFORE TRUNCATE ON decisions FOR EACH STATEMENT EXECUTE FUNCTION refuse_change()',
    ],
  },
  leases: {
    indexes: [
      'CREATE INDEX leases_by_task ON leases (task_id, id)',
      'CREATE INDEX leases_by_workload ON leases (workload_id, id)',
      'CREATE INDEX leases_by_boundary ON leases (boundary_id, id)',
      `CREATE INDEX leases_active_by_expiry ON leases (expires_at) WHERE state = 'active'`,
      `CREATE INDEX leases_external_due ON leases (expires_at) WHERE state = 'active' AND external`,
      `CREATE INDEX leases_issuing ON leases (issued_at) WHERE state = 'issuing'`,
      `CREATE INDEX leases_outbox_due ON leases (revoke_next_at) WHERE state IN ('revoking', 'revoke_failed')`,
    ],
    plainOnly: [],
    foreignKeys: [
      'ALTER TABLE leases ADD CONSTRAINT leases_task_id_fkey FOREIGN KEY (task_id) REFERENCES tasks (id)',
      'ALTER TABLE leases ADD CONSTRAINT leases_boundary_id_boundary_version_fkey FOREIGN KEY (boundary_id, boundary_version) REFERENCES boundaries (id, version)',
    ],
    plainForeignKeys: ['ALTER TABLE leases ADD CONSTRAINT leases_decision_id_fkey FOREIGN KEY (decision_id) REFERENCES decisions (id)'],
    triggers: [],
  },
  audit_events: {
    indexes: [
      'CREATE INDEX audit_events_by_task ON audit_events (task_id, id)',
      'CREATE INDEX audit_events_chained ON audit_events (xid, seq) WHERE hash IS NOT NULL',
      'CREATE INDEX audit_events_unchained ON audit_events (xid, seq) WHERE hash IS NULL',
    ],
    plainOnly: [
      'CREATE UNIQUE INDEX audit_events_by_seq ON audit_events (seq)',
      'CREATE UNIQUE INDEX audit_events_one_successor ON audit_events (prev_hash) WHERE prev_hash IS NOT NULL',
    ],
    foreignKeys: [],
    plainForeignKeys: [],
    triggers: [
      'CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()',
      'CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events FOR EACH STATEMENT EXECUTE FUNCTION refuse_change()',
    ],
  },
};

/** The advisory lock under which partitions are made (one maker at a time across replicas). */
const HISTORY_PARTITION_LOCK = 0x70_11_a0_d2; // the same number as libs/db/partitions.ts

/** The history tables as this migration made them; migration 1764117090000 adds audit_links. */
export const HISTORY_TABLES = ['decisions', 'leases', 'audit_events'] as const;

/** What a month of audit_events gets beyond its table (PL/pgSQL; `part` is its name). */
export const AUDIT_EVENTS_MONTH = `
          IF t = 'audit_events' THEN
            EXECUTE format('CREATE UNIQUE INDEX %I ON %I (seq)', part || '_seq', part);
            EXECUTE format('CREATE UNIQUE INDEX %I ON %I (prev_hash) WHERE prev_hash IS NOT NULL', part || '_one_successor', part);
          END IF;`;

/**
 * The two SQL functions that make months: tollgate_history_partition (one month of every table;
 * idempotent; the caller holds the partition lock) and tollgate_ensure_history_partitions (this
 * month and `ahead` more, by the database clock). `perTable` is PL/pgSQL run for each new month of
 * a table, with `t` the table and `part` the partition. A later migration that changes the tables
 * replaces both, and puts these back on the way down.
 */
export function historyPartitionFunctions(tables: readonly string[], perTable: string): string[] {
  const list = `ARRAY[${tables.map((t) => `'${t}'`).join(', ')}]`;
  return [
    `
      CREATE OR REPLACE FUNCTION tollgate_history_partition(month timestamp) RETURNS integer LANGUAGE plpgsql
      SECURITY DEFINER SET search_path FROM CURRENT AS $$
      DECLARE
        start timestamp := date_trunc('month', month);
        part text;
        t text;
        made integer := 0;
      BEGIN
        FOREACH t IN ARRAY ${list} LOOP
          part := t || to_char(start, '"_y"YYYY"m"MM');
          -- A query of pg_class, not to_regclass: after waiting for the lock, this session's catalog
          -- cache may not know yet of the partition the lock's previous holder made.
          CONTINUE WHEN EXISTS (SELECT 1 FROM pg_class c WHERE c.relname = part AND c.relnamespace = current_schema()::regnamespace);
          EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)', part, t,
                         tollgate_history_bound(start), tollgate_history_bound(start + interval '1 month'));
          -- Row triggers come from the parent; a TRUNCATE of the partition itself must be refused too.
          IF t <> 'leases' THEN
            EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON %I FOR EACH STATEMENT EXECUTE FUNCTION refuse_change()',
                           part || '_no_truncate', part);
          END IF;${perTable}
          made := made + 1;
        END LOOP;
        RETURN made;
      END
      $$`,
    // The lock is taken only when a month is missing, so replicas calling this every pass cost
    // each other nothing.
    `
      CREATE OR REPLACE FUNCTION tollgate_ensure_history_partitions(ahead integer) RETURNS integer LANGUAGE plpgsql
      SECURITY DEFINER SET search_path FROM CURRENT AS $$
      DECLARE
        this_month timestamp := date_trunc('month', now() AT TIME ZONE 'UTC');
        made integer := 0;
        i integer;
      BEGIN
        IF ahead < 0 OR ahead > 120 THEN
          RAISE EXCEPTION 'ahead must be 0..120, not %', ahead USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF NOT EXISTS (
          SELECT 1 FROM generate_series(0, ahead) n, unnest(${list}) t
           WHERE NOT EXISTS (SELECT 1 FROM pg_class c
                              WHERE c.relname = t || to_char(this_month + n * interval '1 month', '"_y"YYYY"m"MM')
                                AND c.relnamespace = current_schema()::regnamespace)) THEN
          RETURN 0;
        END IF;
        PERFORM pg_advisory_xact_lock(${HISTORY_PARTITION_LOCK});
        FOR i IN 0..ahead LOOP
          made := made + tollgate_history_partition(this_month + i * interval '1 month');
        END LOOP;
        RETURN made;
      END
      $$`,
  ];
}

export class HistoryPartitions1764116910000 implements MigrationInterface {
  name = 'HistoryPartitions1764116910000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE FUNCTION tollgate_history_bound(month timestamp) RETURNS uuid LANGUAGE sql IMMUTABLE AS $$
        SELECT (substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-0000-0000-000000000000')::uuid
          FROM (SELECT lpad(to_hex((extract(epoch FROM date_trunc('month', month)) * 1000)::bigint), 12, '0') AS h) ms
      $$`);
    // One month of the three tables; idempotent. The caller holds the partition lock.
    for (const statement of historyPartitionFunctions(HISTORY_TABLES, AUDIT_EVENTS_MONTH)) await q.query(statement);

    await this.rebuild(q, true);
  }

  async down(q: QueryRunner): Promise<void> {
    await this.rebuild(q, false);
    await q.query('DROP FUNCTION tollgate_ensure_history_partitions(integer)');
    await q.query('DROP FUNCTION tollgate_history_partition(timestamp)');
    await q.query('DROP FUNCTION tollgate_history_bound(timestamp)');
  }

  /**
   * Moves the three tables into new ones, partitioned or plain, with the same columns, constraints,
   * indexes, triggers and foreign keys (in and out), rows and all.
   */
  private async rebuild(q: QueryRunner, partitioned: boolean): Promise<void> {
    // What points at the old tables goes first: the foreign keys to decisions, the seq's owner.
    await q.query('ALTER TABLE approvals DROP CONSTRAINT approvals_decision_id_fkey');
    await q.query('ALTER TABLE leases DROP CONSTRAINT IF EXISTS leases_decision_id_fkey');
    await q.query('ALTER SEQUENCE audit_events_seq OWNED BY NONE');

    for (const table of HISTORY_TABLES) {
      const shape = SHAPES[table];
      const old = `${table}_moving`;
      await q.query(`ALTER TABLE ${table} RENAME TO ${old}`);
      // Index names are the schema's: free them for the new table.
      for (const index of [...shape.indexes, ...shape.plainOnly]) {
        await q.query(`DROP INDEX IF EXISTS ${/INDEX (\w+) ON/.exec(index)![1]!}`);
      }
      await q.query(`ALTER TABLE ${old} DROP CONSTRAINT ${table}_pkey`);
      await q.query(
        `CREATE TABLE ${table} (LIKE ${old} INCLUDING DEFAULTS INCLUDING CONSTRAINTS) ${partitioned ? 'PARTITION BY RANGE (id)' : ''}`,
      );
      await q.query(`ALTER TABLE ${table} ADD CONSTRAINT ${table}_pkey PRIMARY KEY (id)`);
      for (const index of partitioned ? shape.indexes : [...shape.indexes, ...shape.plainOnly]) await q.query(index);
      if (partitioned) {
        await q.query(`CREATE TABLE ${table}_default PARTITION OF ${table} DEFAULT`);
        if (table !== 'leases') {
          await q.query(
            `CREATE TRIGGER ${table}_default_no_truncate BEFORE TRUNCATE ON ${table}_default FOR EACH STATEMENT EXECUTE FUNCTION refuse_change()`,
          );
        }
        if (table === 'audit_events') {
          await q.query('CREATE UNIQUE INDEX audit_events_default_seq ON audit_events_default (seq)');
          await q.query(
            'CREATE UNIQUE INDEX audit_events_default_one_successor ON audit_events_default (prev_hash) WHERE prev_hash IS NOT NULL',
          );
        }
      }
    }

    if (partitioned) {
      // A month for every month the data has (within ten years), and this month and the next two.
      await q.query(`
        SELECT tollgate_history_partition(month) FROM (
          SELECT DISTINCT date_trunc('month', to_timestamp(('x' || substr(replace(id::text, '-', ''), 1, 12))::bit(48)::bigint / 1000.0) AT TIME ZONE 'UTC') AS month
            FROM (SELECT id FROM decisions_moving UNION ALL SELECT id FROM leases_moving UNION ALL SELECT id FROM audit_events_moving) ids
           WHERE substr(id::text, 15, 1) = '7') months
         WHERE month >= date_trunc('month', now() AT TIME ZONE 'UTC') - interval '10 years'
           AND month < date_trunc('month', now() AT TIME ZONE 'UTC') + interval '3 months'
         ORDER BY month`);
      await q.query('SELECT tollgate_ensure_history_partitions(2)');
    }

    for (const table of HISTORY_TABLES) {
      await q.query(`INSERT INTO ${table} SELECT * FROM ${table}_moving`);
      await q.query(`DROP TABLE ${table}_moving`);
    }
    for (const table of HISTORY_TABLES) {
      const { foreignKeys, plainForeignKeys, triggers } = SHAPES[table];
      for (const statement of [...foreignKeys, ...(partitioned ? [] : plainForeignKeys), ...triggers]) await q.query(statement);
    }
    await q.query('ALTER TABLE approvals ADD CONSTRAINT approvals_decision_id_fkey FOREIGN KEY (decision_id) REFERENCES decisions (id)');
    await q.query('ALTER SEQUENCE audit_events_seq OWNED BY audit_events.seq');
  }
}
