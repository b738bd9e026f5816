import type { ApprovalStore } from '../approvals/approval-store.js';
import type { AuditStore } from '../audit/audit-store.js';
import { NotFound } from '../errors/errors.js';
import type { LeaseStore } from '../leases/lease-store.js';
import type { Task } from '../tasks/task.js';
import type { TaskStore } from '../tasks/task-store.js';
import { TIMELINE_AUDIT_KINDS, taskTimeline, type TimelineEvent } from './timeline.js';

/** More rows than any one journey makes; a task past it is cut, not the broker. */
const MAX_ROWS = 10_000;

/** A task's story for reviewers (any task: reviewers are not held to one workload). */
export class TaskHistory {
  constructor(
    private readonly audit: AuditStore,
    private readonly tasks: TaskStore,
    private readonly leases: LeaseStore,
    private readonly approvals: ApprovalStore,
  ) {}

  async timeline(taskId: string): Promise<{ task: Task; events: TimelineEvent[] }> {
    const task = await this.tasks.find(taskId);
    if (!task) throw new NotFound('no such task');
    const [events, decisions, leases, approvals, audit] = await Promise.all([
      this.tasks.events(taskId),
      this.leases.listDecisions({ task: taskId, limit: MAX_ROWS }),
      this.leases.forTask(taskId),
      this.approvals.list({ task: taskId, limit: MAX_ROWS }),
      this.audit.ofTask(taskId, TIMELINE_AUDIT_KINDS, MAX_ROWS),
    ]);
    return {
      task,
      events: taskTimeline({ task, events, decisions, leases, approvals, audit: audit.map((event) => ({ ...event, at: new Date(event.at) })) }),
    };
  }
}
