import type { ApprovalStore } from '../approvals/index.js';
import type { AuditStore } from '../audit/index.js';
import { NotFound } from '../errors/index.js';
import type { DecisionLedger } from '../leases/index.js';
import type { LeaseStore } from '../leases/index.js';
import type { Task } from '../tasks/index.js';
import type { TaskStore } from '../tasks/index.js';
import { TIMELINE_AUDIT_KINDS, taskTimeline, type TimelineEvent } from './timeline.js';

/** More rows than any one journey makes; a task past it is cut, not the broker. */
const MAX_ROWS = 10_000;

/** A task's story for reviewers (any task: reviewers are not held to one workload). */
export class TaskHistory {
  constructor(
    private readonly stores: {
      audit: AuditStore;
      tasks: TaskStore;
      decisions: Pick<DecisionLedger, 'listDecisions'>;
      leases: Pick<LeaseStore, 'forTask'>;
      approvals: ApprovalStore;
    },
  ) {}

  async timeline(taskId: string): Promise<{ task: Task; events: TimelineEvent[] }> {
    const stores = this.stores;
    const task = await stores.tasks.find(taskId);
    if (!task) throw new NotFound('no such task');
    const [events, decisions, leases, approvals, audit] = await Promise.all([
      stores.tasks.events(taskId),
      stores.decisions.listDecisions({ task: taskId, limit: MAX_ROWS }),
      stores.leases.forTask(taskId),
      stores.approvals.list({ task: taskId, limit: MAX_ROWS }),
      stores.audit.ofTask(taskId, TIMELINE_AUDIT_KINDS, MAX_ROWS),
    ]);
    return {
      task,
      events: taskTimeline({
        task,
        events,
        decisions,
        leases,
        approvals,
        audit: audit.map((event) => ({ ...event, at: new Date(event.at) })),
      }),
    };
  }
}
