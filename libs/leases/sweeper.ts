import { appendAudit } from '../audit/index.js';
import type { Database } from '../db/index.js';
import type { DpopProofStore } from '../identity/index.js';
import { pendingLeaseReason, type TaskStore } from '../tasks/index.js';
import type { LeaseStore } from './lease-store.js';
import type { LeaseRevocation } from './revocation.js';

const ACTOR = 'system:sweeper';
const DPOP_SWEEP_MARGIN_MS = 60_000;
/**
 * How long a task's leases may stay pending before the sweeper revokes their rows: the request that
 * ended the task does it within milliseconds, unless its replica died.
 */
export const PENDING_GRACE_S = 10;

/**
 * Acts on what the clock already decided: tasks past their time become `expired` (their leases
 * revoked, reason task_expired), and leases past theirs that hold a credential at a source are
 * handed to the outbox to be revoked there. Reads never wait for this (they compute expiry from
 * the database clock), and a lease with nothing at a source is never rewritten for its expiry.
 * Safe to run on every replica at once: rows are claimed with FOR UPDATE SKIP LOCKED.
 */
export interface SweeperOptions {
  db: Database;
  tasks: TaskStore;
  leases: LeaseStore;
  revocation: LeaseRevocation;
  /** Used DPoP proofs to forget once their iat would be refused anyway. */
  dpopProofs?: DpopProofStore | undefined;
}

export class ExpirySweeper {
  private readonly db: Database;
  private readonly tasks: TaskStore;
  private readonly leases: LeaseStore;
  private readonly revocation: LeaseRevocation;
  private readonly dpopProofs: DpopProofStore | undefined;

  constructor(options: SweeperOptions) {
    this.db = options.db;
    this.tasks = options.tasks;
    this.leases = options.leases;
    this.revocation = options.revocation;
    this.dpopProofs = options.dpopProofs;
  }

  /** One pass; returns how many tasks and leases it marked. Bounded so a pass cannot run forever. */
  async sweepOnce(batch = 10_000, maxBatches = 200): Promise<{ tasks: number; leases: number }> {
    let tasks = 0;
    for (let i = 0; i < maxBatches; i++) {
      const n = await this.db.transaction(async (tx) => {
        const ids = await this.tasks.claimExpired(tx, Math.min(batch, 500));
        for (const id of ids) {
          await this.revocation.revokeTaskLeases(tx, id, 'task_expired', ACTOR);
          await this.tasks.end(tx, id, 'expired', 'task_expired');
        }
        if (ids.length > 0) await appendAudit(tx, { kind: 'task.expired', actor: ACTOR, data: { task_ids: ids } });
        return ids.length;
      });
      tasks += n;
      if (n < Math.min(batch, 500)) break;
    }

    // Tasks that ended with their leases pending, whose replica died before revoking the rows:
    // their leases already read revoked; this writes it down (events, audit, the outbox).
    for (let i = 0; i < maxBatches; i++) {
      const n = await this.db.transaction(async (tx) => {
        const ids = await this.tasks.staleLeasesPending(tx, 100, PENDING_GRACE_S);
        for (const id of ids) {
          const ended = await this.tasks.takePendingLeases(tx, id);
          if (ended !== undefined) await this.revocation.revokeTaskLeases(tx, id, pendingLeaseReason(ended), ACTOR);
        }
        return ids.length;
      });
      tasks += n;
      if (n < 100) break;
    }

    let leases = 0;
    for (let i = 0; i < maxBatches; i++) {
      const n = await this.leases.expireDue(batch);
      leases += n;
      if (n < batch) break;
    }
    // Used DPoP proofs are kept only while their iat could still be accepted (plus a margin for
    // replicas' clocks); their iat refuses them after that.
    if (this.dpopProofs) {
      for (let i = 0; i < maxBatches; i++) {
        if ((await this.dpopProofs.sweep(batch, DPOP_SWEEP_MARGIN_MS)) < batch) break;
      }
    }
    return { tasks, leases };
  }
}
