import type { Database, Sql } from '../db/index.js';
import { conditions } from '../db/index.js';
import type { AuditKind } from './audit.js';
import type { ChainedContent, LinkedEvent } from './chain.js';

/** An arbitrary constant: the advisory lock that elects the one chainer among replicas. */
export const CHAINER_LOCK = 0x70_11_a0_d1;

/** An audit event as reviewers read it; prevHash and hash are null until the chainer links it. */
export interface AuditRecord extends ChainedContent {
  data: Record<string, unknown>;
  prevHash: string | null;
  hash: string | null;
}

export interface AuditFilter {
  task?: string | undefined;
  /** Events the workload caused, and events about its tasks. */
  workload?: string | undefined;
  kind?: AuditKind | undefined;
  since?: Date | undefined;
  until?: Date | undefined;
  /** Events before this seq (newest first). */
  cursor?: string | undefined;
  limit: number;
}

/** A place in chain order: (writer's transaction id, seq). */
export interface ChainPosition {
  xid: string;
  seq: string;
}

interface EventRow {
  id: string;
  seq: string;
  xid: string;
  at: string;
  kind: string;
  actor: string;
  task_id: string | null;
  lease_id: string | null;
  data: string;
  prev_hash: string | null;
  hash: string | null;
}

// `at` to the microsecond, in one fixed form: it is part of what is hashed. `data` as text, parsed
// here, so both database adapters hand the hash the same values. The link is the event's row in
// audit_links (migration 1764117090000), when it has one.
const EVENT = `a.id, a.seq::text AS seq, a.xid::text AS xid,
  to_char(a.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS at,
  a.kind, a.actor, a.task_id, a.lease_id, a.data::text AS data`;
const COLUMNS = `${EVENT}, l.prev_hash, l.hash`;
const LINKED = 'audit_events a LEFT JOIN audit_links l ON l.event_id = a.id';

/** What the chainer writes for one event: its link, at its place in chain order. */
export interface Link extends ChainPosition {
  id: string;
  prevHash: string;
  hash: string;
}

/** SQL for the audit chain: reading events, the chainer's claims and links, the verifier's pages. */
export class AuditStore {
  constructor(private readonly sql: Database) {}

  /** Newest first (by seq), for reviewers. */
  async list(filter: AuditFilter): Promise<AuditRecord[]> {
    const { where, params } = conditions([
      ['a.task_id = ?', filter.task],
      // The workload that acted, or the workload whose task the event is about.
      [
        `?::text IN (CASE WHEN a.actor LIKE 'workload:%' THEN substr(a.actor, 10) END, (SELECT t.workload_id FROM tasks t WHERE t.id = a.task_id))`,
        filter.workload,
      ],
      ['a.kind = ?', filter.kind],
      ['a.at >= ?', filter.since],
      ['a.at < ?', filter.until],
      ['a.seq < ?::bigint', filter.cursor],
    ]);
    params.push(filter.limit);
    const { rows } = await this.sql.query<EventRow>(
      `SELECT ${COLUMNS} FROM ${LINKED} ${where} ORDER BY a.seq DESC LIMIT $${params.length}`,
      params,
    );
    return rows.map(toRecord);
  }

  /** A task's events of the given kinds, oldest first (through the by-task index). */
  async ofTask(taskId: string, kinds: readonly AuditKind[], limit: number): Promise<AuditRecord[]> {
    const { rows } = await this.sql.query<EventRow>(
      `SELECT ${COLUMNS} FROM ${LINKED} WHERE a.task_id = $1 AND a.kind = ANY ($2::text[]) ORDER BY a.id LIMIT $3`,
      [taskId, kinds, limit],
    );
    return rows.map(toRecord);
  }

  /**
   * Only one chainer at a time, across replicas: the lock lasts until the transaction ends.
   * pg_try_: a replica that is not the chainer skips its turn rather than queue behind it.
   */
  async lockChain(tx: Sql): Promise<boolean> {
    const { rows } = await tx.query<{ locked: boolean }>('SELECT pg_try_advisory_xact_lock($1) AS locked', [CHAINER_LOCK]);
    return rows[0]!.locked;
  }

  /** The last link, in chain order. */
  async head(sql: Sql = this.sql): Promise<(ChainPosition & { hash: string }) | undefined> {
    const { rows } = await sql.query<{ xid: string; seq: string; hash: string }>(
      // Ordered by the table's columns (l.), not the text aliases of the same names.
      `SELECT l.xid::text AS xid, l.seq::text AS seq, l.hash FROM audit_links l ORDER BY l.xid DESC, l.seq DESC LIMIT 1`,
    );
    return rows[0];
  }

  /**
   * Events after `after` (the head) whose writer has ended, in chain order: xid below the oldest
   * transaction still in flight (the snapshot's xmin). No event can appear below that line any
   * more (see chainer.ts), so everything linked is a prefix of the chain and what follows the head
   * is exactly what is not linked yet.
   */
  async linkable(tx: Sql, after: ChainPosition | undefined, limit: number): Promise<(AuditRecord & ChainPosition)[]> {
    const { rows } = await tx.query<EventRow>(
      `SELECT ${EVENT}, NULL AS prev_hash, NULL AS hash FROM audit_events a
        WHERE a.xid < pg_snapshot_xmin(pg_current_snapshot()) ${after ? 'AND (a.xid, a.seq) > ($2::xid8, $3::bigint)' : ''}
        ORDER BY a.xid, a.seq LIMIT $1`,
      after ? [limit, after.xid, after.seq] : [limit],
    );
    return rows.map((row) => ({ ...toRecord(row), xid: row.xid }));
  }

  /**
   * Writes links, one INSERT. A second link of an event, or a second successor of one, is refused
   * by the keys (the statement fails, nothing is written). Returns how many were written.
   */
  async link(tx: Sql, links: readonly Link[]): Promise<number> {
    if (links.length === 0) return 0;
    const { count } = await tx.query(
      `INSERT INTO audit_links (event_id, xid, seq, prev_hash, hash)
       SELECT v.id, v.xid::xid8, v.seq, v.prev_hash, v.hash
         FROM jsonb_to_recordset($1::jsonb) AS v(id uuid, xid text, seq bigint, prev_hash text, hash text)`,
      [JSON.stringify(links.map((l) => ({ id: l.id, xid: l.xid, seq: l.seq, prev_hash: l.prevHash, hash: l.hash })))],
    );
    return count;
  }

  /** One page of linked events in the events' chain order, after `after`. */
  async chainPage(after: ChainPosition | undefined, limit: number): Promise<(LinkedEvent & ChainPosition)[]> {
    const { rows } = await this.sql.query<EventRow>(
      `SELECT ${COLUMNS} FROM audit_events a JOIN audit_links l ON l.event_id = a.id
        ${after ? 'WHERE (a.xid, a.seq) > ($2::xid8, $3::bigint)' : ''}
        ORDER BY a.xid, a.seq LIMIT $1`,
      after ? [limit, after.xid, after.seq] : [limit],
    );
    return rows.map((row) => ({ ...toRecord(row), prevHash: row.prev_hash!, hash: row.hash!, xid: row.xid }));
  }

  /** The newest anchor (pruned history ends there), or undefined when nothing was ever pruned. */
  async anchor(sql: Sql = this.sql): Promise<(ChainPosition & { hash: string }) | undefined> {
    const { rows } = await sql.query<{ xid: string; seq: string; hash: string }>(
      `SELECT xid::text AS xid, seq::text AS seq, hash FROM audit_chain_anchors ORDER BY xid DESC, seq DESC LIMIT 1`,
    );
    return rows[0];
  }

  /**
   * Events after the head (or the anchor, after a prune) in chain order: the ones not linked yet.
   * Asked once a second by the chainer, so it must read only the index's tail. A month without
   * statistics yet (new, or autovacuum off) makes the planner guess a third of its rows lie past
   * the head and scan them all, in parallel (measured: 200 ms over 300,000 events, for 500
   * unlinked). With sequential scans and parallel workers off for this one transaction it reads
   * the (xid, seq) index from the head: 1.2 ms.
   */
  async countUnlinked(): Promise<number> {
    return this.sql.transaction(async (tx) => {
      const from = (await this.head(tx)) ?? (await this.anchor(tx));
      await tx.query('SET LOCAL enable_seqscan = off');
      await tx.query('SET LOCAL max_parallel_workers_per_gather = 0');
      const { rows } = await tx.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM audit_events a ${from ? 'WHERE (a.xid, a.seq) > ($1::xid8, $2::bigint)' : ''}`,
        from ? [from.xid, from.seq] : [],
      );
      return rows[0]!.n;
    });
  }

  /**
   * The first event, in chain order, that has no link although it sorts before `head`: the chain
   * skipped it (a server whose transaction ids went back, e.g. restored without pg_resetwal -e).
   */
  async skippedBefore(head: ChainPosition): Promise<{ id: string; seq: string } | undefined> {
    const { rows } = await this.sql.query<{ id: string; seq: string }>(
      `SELECT a.id, a.seq::text AS seq FROM audit_events a
        WHERE (a.xid, a.seq) < ($1::xid8, $2::bigint) AND NOT EXISTS (SELECT 1 FROM audit_links l WHERE l.event_id = a.id)
        ORDER BY a.xid, a.seq LIMIT 1`,
      [head.xid, head.seq],
    );
    return rows[0];
  }

  /**
   * Whether an event that is still there has this hash (tells a deleted predecessor from a moved
   * one: a deleted event's link may outlive it).
   */
  async hashExists(hash: string): Promise<boolean> {
    const { rows } = await this.sql.query<{ found: boolean }>(
      'SELECT EXISTS (SELECT 1 FROM audit_links l JOIN audit_events a ON a.id = l.event_id WHERE l.hash = $1) AS found',
      [hash],
    );
    return rows[0]!.found;
  }
}

function toRecord(row: EventRow): AuditRecord {
  return {
    id: row.id,
    seq: row.seq,
    at: row.at,
    kind: row.kind,
    actor: row.actor,
    taskId: row.task_id,
    leaseId: row.lease_id,
    data: JSON.parse(row.data) as Record<string, unknown>,
    prevHash: row.prev_hash,
    hash: row.hash,
  };
}
