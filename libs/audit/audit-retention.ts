import type { MonthPartition, Sql } from '../db/index.js';
import { Conflict } from '../errors/index.js';
import { uuidv7 } from '../ids/index.js';
import { CHAINER_LOCK, type ChainPosition } from './audit-store.js';

/** Where verification starts once older events were dropped: the last dropped event. */
export interface ChainAnchor extends ChainPosition {
  hash: string;
}

interface Head {
  xid: string;
  seq: string;
  hash: string;
}

function before(a: ChainPosition, b: ChainPosition): boolean {
  const [ax, bx] = [BigInt(a.xid), BigInt(b.xid)];
  return ax < bx || (ax === bx && BigInt(a.seq) < BigInt(b.seq));
}

/**
 * Drops whole months of audit events, keeping the chain verifiable: the dropped events must be a
 * linked prefix of the chain (every one linked, none after a kept event in chain order), and the
 * last of them becomes the anchor the first kept event's prev_hash names. Runs inside the caller's
 * transaction, which holds the chainer's lock from here on: no pass links while the prefix is
 * judged, and the anchor row commits with the drop or not at all.
 */
export class AuditRetention {
  /**
   * `dropping` and `keeping` together are every partition of audit_events (`keeping` with the
   * DEFAULT one). Returns how many events went, the anchor (undefined when none went) and the
   * partitions dropped (each month of events with its month of links); throws
   * Conflict, having changed nothing, when the months cannot go yet.
   */
  async drop(
    tx: Sql,
    input: { dropping: readonly MonthPartition[]; keeping: readonly string[]; before: string; actor: string },
  ): Promise<{ events: number; anchor: ChainAnchor | undefined; partitions: string[] }> {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [CHAINER_LOCK]);
    let events = 0;
    let anchor: Head | undefined;
    for (const { name, month } of input.dropping) {
      // A month's links are in the links' partition of the same month (both by event id).
      const links = linksOf(name);
      const { rows } = await tx.query<{ n: number; unlinked: boolean }>(
        `SELECT count(*)::int AS n, bool_or(l.event_id IS NULL) AS unlinked FROM ${name} a LEFT JOIN ${links} l ON l.event_id = a.id`,
      );
      if (rows[0]!.unlinked)
        throw new Conflict(`audit events of ${month} are not linked into the chain yet; try again after the chainer's next pass`);
      events += rows[0]!.n;
      const last = await tx.query<Head>(
        `SELECT xid::text AS xid, seq::text AS seq, hash FROM ${links} ORDER BY xid DESC, seq DESC LIMIT 1`,
      );
      const head = last.rows[0];
      if (head && (!anchor || before(anchor, head))) anchor = head;
    }
    if (!anchor) return { events, anchor: undefined, partitions: [] };
    // A kept event before the anchor in chain order would be cut off from its successors.
    for (const name of input.keeping) {
      const { rows } = await tx.query<{ found: boolean }>(
        `SELECT EXISTS (SELECT 1 FROM ${name} WHERE (xid, seq) < ($1::xid8, $2::bigint)) AS found`,
        [anchor.xid, anchor.seq],
      );
      if (rows[0]!.found)
        throw new Conflict(`a kept audit event comes before the last event of the months to drop in chain order; choose an earlier month`);
    }
    await tx.query(
      `INSERT INTO audit_chain_anchors (id, before, xid, seq, hash, dropped, actor) VALUES ($1, $2, $3::xid8, $4::bigint, $5, $6, $7)`,
      [uuidv7(), input.before, anchor.xid, anchor.seq, anchor.hash, events, input.actor],
    );
    const partitions = input.dropping.flatMap(({ name }) => [name, linksOf(name)]);
    for (const { name } of input.dropping) await tx.query(`DROP TABLE ${name}, ${linksOf(name)}`);
    return { events, anchor, partitions };
  }
}

/** audit_events_y2026m11 → audit_links_y2026m11 (both made by tollgate_history_partition). */
function linksOf(eventsPartition: string): string {
  return eventsPartition.replace(/^audit_events_/, 'audit_links_');
}
