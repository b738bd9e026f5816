import { appendAudit } from '../audit/index.js';
import type { Database, Sql } from '../db/index.js';
import type { LeaseStore } from './lease-store.js';
import type { RevokeReason } from './lease.js';

/** Told about every revoked lease (metrics now; the revocation event stream later). */
export type RevocationObserver = (leaseIds: readonly string[], reason: RevokeReason) => void;

/**
 * Revoking leases, for every reason there is. Each call records who did it and why in the audit
 * log in the same transaction as the state change. JWT credentials need nothing more: the lease row
 * is what introspection reads.
 */
export class LeaseRevocation {
  constructor(
    private readonly db: Database,
    private readonly leases: LeaseStore,
    private readonly observe: RevocationObserver = () => {},
  ) {}

  /** Every live lease of a task, inside the caller's transaction (task completion, intent change). */
  async revokeTaskLeases(tx: Sql, taskId: string, reason: RevokeReason, actor: string): Promise<string[]> {
    return this.revokeIn(tx, 'task', taskId, reason, actor, taskId);
  }

  async countTaskLeases(tx: Sql, taskId: string): Promise<number> {
    return this.leases.countLive(tx, taskId);
  }

  async revokeWorkloadLeases(tx: Sql, workloadId: string, reason: RevokeReason, actor: string): Promise<string[]> {
    return this.revokeIn(tx, 'workload', workloadId, reason, actor);
  }

  async revokeBoundaryLeases(tx: Sql, boundaryId: string, actor: string): Promise<string[]> {
    return this.revokeIn(tx, 'boundary', boundaryId, 'boundary_disabled', actor);
  }

  /**
   * One lease; false when it was not live (already revoked, expired, or unknown). `comment` (an
   * admin's words) goes to the audit event; the lease keeps the reason code.
   */
  async revokeLease(leaseId: string, reason: RevokeReason, actor: string, comment?: string): Promise<boolean> {
    const revoked = await this.db.transaction((tx) => this.revokeIn(tx, 'lease', leaseId, reason, actor, undefined, comment));
    return revoked.length === 1;
  }

  private async revokeIn(
    tx: Sql,
    where: 'task' | 'workload' | 'boundary' | 'lease',
    id: string,
    reason: RevokeReason,
    actor: string,
    taskId?: string,
    comment?: string,
  ): Promise<string[]> {
    const ids = await this.leases.revokeWhere(tx, where, id, reason);
    if (ids.length === 1 && where === 'lease') {
      await appendAudit(tx, {
        kind: 'lease.revoked',
        actor,
        leaseId: ids[0],
        data: { reason, ...(comment === undefined ? {} : { comment }) },
      });
    } else if (ids.length > 0) {
      await appendAudit(tx, { kind: 'leases.revoked', actor, taskId, data: { reason, [`${where}_id`]: id, lease_ids: ids } });
    }
    if (ids.length > 0) this.observe(ids, reason);
    return ids;
  }
}
