import type { ApprovalStore } from '../approvals/index.js';
import { appendAudit, type AuditRetention, type ChainAnchor } from '../audit/index.js';
import type { Database, MonthPartition, Sql } from '../db/index.js';
import { ensureHistoryPartitions, HISTORY_PARTITION_LOCK, monthPartitions, sqlState } from '../db/index.js';
import { Conflict, InvalidRequest } from '../errors/index.js';

/** How often each replica checks that the coming months have partitions (they are made two months ahead). */
export const PARTITION_INTERVAL_MS = 3_600_000;

/** YYYY-MM, nothing else (no spaces, no day, no sign): the first month kept. */
const MONTH = /^(\d{4})-(0[1-9]|1[0-2])$/;

export interface PruneReport {
  /** The first month kept (YYYY-MM). */
  before: string;
  /** The partitions dropped, oldest first per table. */
  partitions: string[];
  leases: number;
  decisions: number;
  auditEvents: number;
  /** Closed approvals whose pending decision went with its month. */
  approvals: number;
  /** Where the audit chain now starts; undefined when no audit event was dropped. */
  anchor: ChainAnchor | undefined;
}

/** Refuses (InvalidRequest) a first month to keep that is not YYYY-MM: before any database work. */
export function checkFirstMonthKept(before: string): void {
  if (!MONTH.test(before)) throw new InvalidRequest('--before must be a month written YYYY-MM (the first month to keep)');
}

/**
 * History retention: leases, decisions and audit events live in monthly partitions (by their
 * UUIDv7 id), so old history goes by dropping whole months, not by deleting rows, and the months
 * ahead are made before they are needed (`ensurePartitions`, on a timer in every replica).
 */
export class HistoryRetention {
  constructor(
    private readonly db: Database,
    private readonly audit: AuditRetention,
    private readonly approvals: Pick<ApprovalStore, 'forgetOfDecisionMonth'>,
  ) {}

  /** This month's partitions and the next ones'; how many it made (0 almost always). */
  ensurePartitions(): Promise<number> {
    return ensureHistoryPartitions(this.db);
  }

  /**
   * Drops every month before `before` (YYYY-MM) of the three tables, in one transaction, or
   * nothing: refused when one of those months still holds something alive (a lease not over, a
   * lease waiting on its source, an open approval, an audit event not linked yet) or something kept
   * depends on it (a kept lease's decision). The DEFAULT partitions (ids that are not UUIDv7) are
   * never dropped. Records the audit chain's new anchor and a `history.pruned` event.
   */
  async prune(before: string, actor: string): Promise<PruneReport> {
    checkFirstMonthKept(before);
    return this.db.transaction(async (tx) => {
      const { rows } = await tx.query<{ month: string }>(`SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM') AS month`);
      if (before > rows[0]!.month)
        throw new InvalidRequest(`--before ${before} is after this month (${rows[0]!.month}): it would drop live history`);
      // No replica makes partitions meanwhile.
      await tx.query('SELECT pg_advisory_xact_lock($1)', [HISTORY_PARTITION_LOCK]);
      const leases = await this.split(tx, 'leases', before);
      const decisions = await this.split(tx, 'decisions', before);
      const audit = await this.split(tx, 'audit_events', before);

      let leaseCount = 0;
      for (const { name, month } of leases.dropping) {
        const { rows: counted } = await tx.query<{ n: number; alive: number }>(
          `SELECT count(*)::int AS n,
                  (count(*) FILTER (WHERE state IN ('issuing', 'revoking', 'revoke_failed')
                                       OR (state = 'active' AND (external OR expires_at > now()))))::int AS alive
             FROM ${name}`,
        );
        if (counted[0]!.alive > 0)
          throw new Conflict(`${counted[0]!.alive} lease(s) of ${month} are not over yet (active, or waiting on their source)`);
        leaseCount += counted[0]!.n;
        await tx.query(`DROP TABLE ${name}`);
      }

      let decisionCount = 0;
      let approvalCount = 0;
      for (const { name, month } of decisions.dropping) {
        // An approval names the pending decision that asked for it. An open one keeps its month;
        // a closed one is history of that month and goes with it.
        const approvals = await this.approvals.forgetOfDecisionMonth(tx, name);
        if (approvals.open > 0) throw new Conflict(`${approvals.open} approval(s) asked for in ${month} are still open`);
        approvalCount += approvals.forgotten;
        const { rows: counted } = await tx.query<{ n: number; needed: boolean }>(
          // A kept lease may not lose its decision (the partitioned decisions have no foreign key
          // from leases: migration 1764116910000 says why). The month's own leases are gone by now.
          `SELECT count(*)::int AS n, EXISTS (SELECT 1 FROM leases l WHERE l.decision_id IN (SELECT id FROM ${name})) AS needed FROM ${name}`,
        );
        if (counted[0]!.needed) throw new Conflict(`a kept lease still refers to a decision of ${month}`);
        decisionCount += counted[0]!.n;
        // Detaching checks the foreign keys to decisions (approvals'): none may lose its row.
        try {
          await tx.query(`ALTER TABLE decisions DETACH PARTITION ${name}`);
        } catch (error) {
          if (sqlState(error) === '23503') throw new Conflict(`a kept row still refers to a decision of ${month}`);
          throw error;
        }
        await tx.query(`DROP TABLE ${name}`);
      }

      const chain = await this.audit.drop(tx, { dropping: audit.dropping, keeping: audit.keeping, before, actor });
      const partitions = [...[...leases.dropping, ...decisions.dropping].map((p) => p.name), ...chain.partitions];
      await appendAudit(tx, {
        kind: 'history.pruned',
        actor,
        data: {
          before,
          partitions,
          leases: leaseCount,
          decisions: decisionCount,
          audit_events: chain.events,
          approvals: approvalCount,
          ...(chain.anchor ? { anchor: { seq: chain.anchor.seq, hash: chain.anchor.hash } } : {}),
        },
      });
      return {
        before,
        partitions,
        leases: leaseCount,
        decisions: decisionCount,
        auditEvents: chain.events,
        approvals: approvalCount,
        anchor: chain.anchor,
      };
    });
  }

  /** The table's month partitions before `before`, and the names of all the others (DEFAULT too). */
  private async split(
    tx: Sql,
    table: 'leases' | 'decisions' | 'audit_events',
    before: string,
  ): Promise<{ dropping: MonthPartition[]; keeping: string[] }> {
    const months = await monthPartitions(tx, table);
    return {
      dropping: months.filter((p) => p.month < before),
      keeping: [...months.filter((p) => p.month >= before).map((p) => p.name), `${table}_default`],
    };
  }
}
