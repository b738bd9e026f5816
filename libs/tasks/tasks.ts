import { appendAudit } from '../audit/index.js';
import { thenForget, type Database, type Sql } from '../db/index.js';
import { InvalidClient, NotFound, TaskNotActive } from '../errors/index.js';
import type { TaskStore } from './task-store.js';
import { DEFAULT_TASK_TTL_S, type Task, type TaskEvent } from './task.js';

/**
 * A task's leases, as the leases layer above reads them (LeaseStore). Tasks only hands them on,
 * so it names no lease type: `L` is whatever the composition root's store returns.
 */
export interface TaskLeases<L> {
  forTask(taskId: string): Promise<L[]>;
}

/** Why a task's leases die with a change to the task. */
export type TaskLeaseRevokeReason = 'journey_changed' | 'task_completed' | 'task_revoked';

/**
 * Revokes a task's live leases inside the task change's own transaction (LeaseRevocation), so the
 * change and the revocation commit together. Returns the revoked lease ids.
 */
export interface TaskLeaseRevocation {
  revokeTaskLeases(tx: Sql, taskId: string, reason: TaskLeaseRevokeReason, actor: string): Promise<string[]>;
}

export interface TaskView<L> {
  task: Task;
  events: TaskEvent[];
  leases: L[];
}

export interface TasksOptions<L> {
  db: Database;
  tasks: TaskStore;
  leases: TaskLeases<L>;
  revocation: TaskLeaseRevocation;
  /** Told after a task changed (intent, completion), so caches of this replica drop it. */
  changed?: ((taskId: string) => void) | undefined;
  /** The workload's rate limit on opening tasks: throws RateLimited (429) when spent. */
  limitOpen?: ((workloadId: string) => Promise<void>) | undefined;
}

/**
 * Tasks as their owning workload sees them. Any other workload gets 404: a task id is not a
 * capability, but neither is its existence anybody else's business.
 */
export class Tasks<L = never> {
  private readonly db: Database;
  private readonly tasks: TaskStore;
  private readonly leases: TaskLeases<L>;
  private readonly revocation: TaskLeaseRevocation;
  private readonly changed: (taskId: string) => void;
  private readonly limitOpen: (workloadId: string) => Promise<void>;

  constructor(options: TasksOptions<L>) {
    this.db = options.db;
    this.tasks = options.tasks;
    this.leases = options.leases;
    this.revocation = options.revocation;
    this.changed = options.changed ?? (() => {});
    this.limitOpen = options.limitOpen ?? (async () => {});
  }

  /** Opens a task. Rate-limited like credential requests: each open writes a task row and an audit event. */
  async open(
    workloadId: string,
    input: { intent: string; subject: string; context?: Record<string, unknown> | undefined; ttl?: number | undefined },
  ): Promise<Task> {
    // Before anything is written: a flood must not cost the database a row per request.
    await this.limitOpen(workloadId);
    return this.db.transaction(async (tx) => {
      const task = await this.tasks.insert(tx, {
        workloadId,
        intent: input.intent,
        subject: input.subject,
        context: input.context ?? {},
        ttl: input.ttl ?? DEFAULT_TASK_TTL_S,
      });
      // The workload was disabled after it authenticated.
      if (!task) throw new InvalidClient('workload authentication failed: unknown or disabled workload');
      await appendAudit(tx, {
        kind: 'task.opened',
        actor: `workload:${workloadId}`,
        taskId: task.id,
        // The context's keys only: its values are the bot's to tell, and may be personal.
        data: {
          intent: task.intent,
          subject: task.subject,
          context_keys: Object.keys(task.context),
          expires_at: task.expiresAt.toISOString(),
        },
      });
      return task;
    });
  }

  async view(workloadId: string, taskId: string): Promise<TaskView<L>> {
    const task = await this.tasks.find(taskId);
    if (!task || task.workloadId !== workloadId) throw new NotFound('no such task');
    const [events, leases] = [await this.tasks.events(taskId), await this.leases.forTask(taskId)];
    return { task, events, leases };
  }

  /**
   * The user's journey changed: every live lease of the task dies now, and later requests are
   * checked against the new intent. Reporting the same intent again changes nothing.
   */
  async changeIntent(workloadId: string, taskId: string, intent: string): Promise<{ task: Task; revokedLeases: string[] }> {
    return thenForget(
      () =>
        this.db.transaction(async (tx) => {
          const task = await this.owned(tx, workloadId, taskId);
          if (task.intent === intent) return { task, revokedLeases: [] };
          const revokedLeases = await this.revocation.revokeTaskLeases(tx, taskId, 'journey_changed', `workload:${workloadId}`);
          const changed = await this.tasks.setIntent(tx, taskId, intent);
          await appendAudit(tx, {
            kind: 'task.intent_changed',
            actor: `workload:${workloadId}`,
            taskId,
            data: { from: task.intent, to: intent, revoked_leases: revokedLeases.length },
          });
          return { task: changed, revokedLeases };
        }),
      () => this.changed(taskId),
    );
  }

  /** Completing twice is harmless; completing an ended task is not. */
  async complete(workloadId: string, taskId: string): Promise<{ task: Task; revokedLeases: string[] }> {
    return thenForget(
      () =>
        this.db.transaction(async (tx) => {
          const task = await this.tasks.lock(tx, taskId);
          if (!task || task.workloadId !== workloadId) throw new NotFound('no such task');
          if (task.state === 'completed') return { task, revokedLeases: [] };
          if (task.state !== 'active') throw new TaskNotActive(task.state);
          const revokedLeases = await this.revocation.revokeTaskLeases(tx, taskId, 'task_completed', `workload:${workloadId}`);
          const completed = await this.tasks.end(tx, taskId, 'completed', 'task_completed');
          await appendAudit(tx, {
            kind: 'task.completed',
            actor: `workload:${workloadId}`,
            taskId,
            data: { revoked_leases: revokedLeases.length },
          });
          return { task: completed, revokedLeases };
        }),
      () => this.changed(taskId),
    );
  }

  /**
   * An admin ends a task: its live leases die (task_revoked) and it reads `revoked`. A task that has
   * already ended is left as it is (revoking twice is harmless), and `revokedLeases` is empty.
   */
  async revoke(taskId: string, actor: string, comment?: string): Promise<{ task: Task; revokedLeases: string[] }> {
    return thenForget(
      () =>
        this.db.transaction(async (tx) => {
          const task = await this.tasks.lock(tx, taskId);
          if (!task) throw new NotFound('no such task');
          if (task.state !== 'active') return { task, revokedLeases: [] };
          const revokedLeases = await this.revocation.revokeTaskLeases(tx, taskId, 'task_revoked', actor);
          const revoked = await this.tasks.end(tx, taskId, 'revoked', 'revoked_by_admin');
          await appendAudit(tx, {
            kind: 'task.revoked',
            actor,
            taskId,
            data: { revoked_leases: revokedLeases.length, ...(comment === undefined ? {} : { comment }) },
          });
          return { task: revoked, revokedLeases };
        }),
      () => this.changed(taskId),
    );
  }

  private async owned(tx: Sql, workloadId: string, taskId: string): Promise<Task> {
    const task = await this.tasks.lock(tx, taskId);
    if (!task || task.workloadId !== workloadId) throw new NotFound('no such task');
    if (task.state !== 'active') throw new TaskNotActive(task.state);
    return task;
  }
}
