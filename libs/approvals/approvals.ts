import { appendAudit } from '../audit/index.js';
import type { Database } from '../db/index.js';
import { Conflict, NotFound } from '../errors/index.js';
import type { Approval } from './approval.js';
import type { ApprovalFilter, ApprovalStore } from './approval-store.js';

/** What reviewers do with approvals: look at them, approve or deny the pending ones. */
export class Approvals {
  constructor(
    private readonly db: Database,
    private readonly store: ApprovalStore,
  ) {}

  async get(id: string): Promise<Approval> {
    const approval = await this.store.find(id);
    if (!approval) throw new NotFound('no such approval');
    return approval;
  }

  list(filter: ApprovalFilter): Promise<Approval[]> {
    return this.store.list(filter);
  }

  /**
   * Settles a pending approval. `actor` is `reviewer:<key id>` or `admin:<key id>`; it and the
   * reason are stored on the approval and in the audit event. Only a pending approval that is still
   * open can be decided: anything else (decided, used, expired, its task ended) is 409.
   */
  async decide(id: string, verdict: 'approved' | 'denied', actor: string, reason: string): Promise<Approval> {
    return this.db.transaction(async (tx) => {
      const decided = await this.store.decide(tx, id, verdict, actor, reason);
      if (!decided) {
        const current = await this.store.find(id, tx);
        if (!current) throw new NotFound('no such approval');
        throw new Conflict(`the approval is ${current.status}, not pending`, { reasons: [`approval_${current.status}`] });
      }
      await appendAudit(tx, {
        kind: verdict === 'approved' ? 'approval.approved' : 'approval.denied',
        actor,
        taskId: decided.taskId,
        data: {
          approval_id: id,
          decision_id: decided.decisionId,
          boundary: decided.boundaryId,
          action: decided.action,
          resource: decided.resource,
          reason,
        },
      });
      return decided;
    });
  }
}
