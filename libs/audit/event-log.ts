import type { Database } from '../db/index.js';
import { insertSelect } from '../db/index.js';

/** Events about approvals, for reviewers (never a resource server: it has no part in approvals). */
export const APPROVAL_EVENT_TYPES = ['approval.requested', 'approval.approved', 'approval.denied'] as const;
export type ApprovalEventType = (typeof APPROVAL_EVENT_TYPES)[number];

/**
 * What the events stream carries: something a credential may be held for died (what a resource
 * server hears about), or an approval was asked for or decided (what a reviewer waits for).
 */
export interface RevocationEvent {
  /** Delivery position: resume after it with Last-Event-ID. */
  seq: string;
  /** lease.revoke_failed: a credential at a source could not be revoked there after every retry (still retried daily). */
  type: 'lease.revoked' | 'task.ended' | 'workload.revoked' | 'lease.revoke_failed' | ApprovalEventType;
  leaseId: string | null;
  approvalId: string | null;
  boundaryId: string | null;
  taskId: string | null;
  workloadId: string | null;
  reason: string;
  at: Date;
  /** The tool of a lease.revoked event's lease: what a resource server's stream is held to. */
  audience: string | null;
}

/** The columns an event row is written with (id, at, txid and seq are the table's own). */
export type EventColumn = 'type' | 'lease_id' | 'approval_id' | 'task_id' | 'workload_id' | 'boundary_id' | 'reason' | 'audience';

/**
 * The one INSERT INTO revocation_events: every writer goes through it. It is a statement fragment
 * (the body of a CTE), not a method with its own round trip, because an event must commit with
 * the change it announces, in that change's own statement: a lease revoked, a task ended, an
 * approval asked for or decided. Writers name the SQL expression of each column (`values`, in the
 * order written) over the rows of `from` (a FROM clause, with its WHERE if any).
 *
 * The log sits in the audit layer, below identity, tasks, approvals and leases, because all of them
 * append to it (a kill switch, a task ending, an approval event, a lease revoked).
 */
export function appendEvents(
  values: { readonly type: string; readonly reason: string } & Partial<Record<EventColumn, string>>,
  from: string,
): string {
  return insertSelect<EventColumn>('revocation_events', values, from);
}

/**
 * `seq` leaves as text (a bigint past 2^53 would not survive a JS number), so the queries order by
 * `revocation_events.seq`: a bare `ORDER BY seq` would sort the text ("10" before "8").
 */
const EVENT_COLUMNS = 'seq::text AS seq, type, lease_id, approval_id, boundary_id, task_id, workload_id, reason, at, audience';

/**
 * The channel every statement that writes revocation events notifies (a trigger, migration
 * 1764116790000-event-notify): event feeds LISTEN on it to read at once instead of at their poll.
 */
export const EVENT_CHANNEL = 'tollgate_events';

/** Events one sequencer pass positions at most. */
const SEQUENCE_PAGE = 10_000;

/** What one sequencer pass did. */
export interface Sequenced {
  sequenced: number;
  /** Events may be left without a position (the page was full, or another replica sequences). */
  waiting: boolean;
}

/** An arbitrary constant: the advisory lock of whichever replica is giving events their order. */
const SEQUENCER_LOCK = 0x70_11_6a_7f;

/**
 * The durable feed behind GET /v1/events, and the only writer of `revocation_events` (appends
 * through `appendEvents`, positions through `sequence`). Revocations write their events in their own
 * transaction; a trigger notifies EVENT_CHANNEL when a statement wrote some, and readers poll besides.
 * Positions are given only to committed events, by one sequencer at a time, so a reader resuming from
 * a position can never miss an event that committed late: it gets a later position.
 */
export class RevocationEventLog {
  constructor(private readonly db: Database) {}

  /**
   * Gives positions to committed events, in the order they were written; one replica at a time, the
   * others skip. An event whose transaction commits later gets its position in a later pass, after
   * every position given before it: a reader resuming from a position misses nothing. (Positions
   * used to wait until every older transaction of the whole server had ended, which let any long
   * transaction, a pg_dump say, hold revocations back from every stream.) `waiting` says whether
   * committed events may be left without one (the page was full, or another replica holds the
   * sequencer): the feed asks again shortly rather than at its next poll.
   */
  async sequence(): Promise<Sequenced> {
    return this.db.transaction(async (tx) => {
      const { rows } = await tx.query<{ locked: boolean }>('SELECT pg_try_advisory_xact_lock($1) AS locked', [SEQUENCER_LOCK]);
      if (!rows[0]!.locked) return { sequenced: 0, waiting: true };
      const { count } = await tx.query(
        `UPDATE revocation_events e SET seq = s.seq
           FROM (SELECT id, nextval('revocation_event_seq') AS seq
                   FROM (SELECT id FROM revocation_events
                          WHERE seq IS NULL ORDER BY id LIMIT ${SEQUENCE_PAGE}) due) s
          WHERE e.id = s.id`,
        [],
        'tollgate_sequence_events',
      );
      // A full page leaves more behind. Events that commit while this pass runs are not counted
      // here: their statement's notification wakes the feed again (EVENT_CHANNEL).
      return { sequenced: count, waiting: count >= SEQUENCE_PAGE };
    });
  }

  /**
   * Events after a position, in order. With `audience` (a resource server's stream), only the
   * lease.revoked events of leases for that tool: task.ended and workload.revoked carry no tool, and
   * every live lease they end has its own lease.revoked event anyway; approval events carry none
   * either, so a resource server never sees them. The live feed (event-feed.ts) reads without an
   * audience and filters in memory with `visibleTo`, the same rule.
   */
  async after(seq: string, limit = 500, audience?: string): Promise<RevocationEvent[]> {
    const { rows } =
      audience === undefined
        ? await this.db.query<EventRow>(
            `SELECT ${EVENT_COLUMNS} FROM revocation_events
              WHERE seq > $1::bigint ORDER BY revocation_events.seq LIMIT $2`,
            [seq, limit],
            'tollgate_events_after',
          )
        : await this.db.query<EventRow>(
            `SELECT ${EVENT_COLUMNS} FROM revocation_events
              WHERE audience = $3 AND seq > $1::bigint ORDER BY revocation_events.seq LIMIT $2`,
            [seq, limit, audience],
            'tollgate_events_after_for_audience',
          );
    return rows.map((row) => ({
      seq: row.seq,
      type: row.type,
      leaseId: row.lease_id,
      approvalId: row.approval_id,
      boundaryId: row.boundary_id,
      taskId: row.task_id,
      workloadId: row.workload_id,
      reason: row.reason,
      at: new Date(row.at),
      audience: row.audience,
    }));
  }

  /** The latest position given: where a reader that wants only new events starts. */
  async head(): Promise<string> {
    const { rows } = await this.db.query<{ seq: string }>('SELECT coalesce(max(seq), 0)::text AS seq FROM revocation_events');
    return rows[0]!.seq;
  }
}

interface EventRow {
  seq: string;
  type: RevocationEvent['type'];
  lease_id: string | null;
  approval_id: string | null;
  boundary_id: string | null;
  task_id: string | null;
  workload_id: string | null;
  reason: string;
  at: Date;
  audience: string | null;
}

/** Whether a stream held to `audience` (a resource server's) may see the event: the rule of `after`. */
export function visibleTo(event: RevocationEvent, audience: string | undefined): boolean {
  return audience === undefined || event.audience === audience;
}
