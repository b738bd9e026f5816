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

/** The reason a task's leases left pending by its end are revoked with (TaskStore.takePendingLeases). */
export function pendingLeaseReason(ended: 'completed' | 'revoked'): TaskLeaseRevokeReason {
  return ended === 'completed' ? 'task_completed' : 'task_revoked';
}

/**
 * Revokes a task's live leases inside the caller's transaction (LeaseRevocation). Returns the
 * revoked lease ids. An intent change revokes them in its own transaction; a task that ends
 * leaves them pending and revokes them right after its end committed (see complete).
 */
export interface TaskLeaseRevocation {
  revokeTaskLeases(tx: Sql, taskId: string, reason: TaskLeaseRevokeReason, actor: string): Promise<string[]>;
  /** How many of the task's leases are live (what ending it leaves to revoke). */
  countTaskLeases(tx: Sql, taskId: string): Promise<number>;
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

  /**
   * Completing twice is harmless; completing an ended task is not.
   *
   * Two transactions, so that revoking many leases does not hold back the moment they stop
   * working (issue 15: 1,000 leases took ~35 ms of row rewrites inside the completing
   * transaction). The first ends the task with its leases pending: from its commit they all read
   * revoked (EFFECTIVE_STATE), and the event stream says task.ended. The second revokes their rows
   * (events, audit, the outbox for credentials at a source) before the answer. If this replica
   * dies in between, the sweeper revokes them; a retried complete does it as well.
   */
  async complete(workloadId: string, taskId: string): Promise<{ task: Task; revokedLeases: string[] }> {
    const actor = `workload:${workloadId}`;
    return thenForget(
      async () => {
        const task = await this.db.transaction(async (tx) => {
          const task = await this.tasks.lock(tx, taskId);
          if (!task || task.workloadId !== workloadId) throw new NotFound('no such task');
          if (task.state === 'completed') return task;
          if (task.state !== 'active') throw new TaskNotActive(task.state);
          const live = await this.revocation.countTaskLeases(tx, taskId);
          const completed = await this.tasks.end(tx, taskId, 'completed', 'task_completed', true);
          await appendAudit(tx, { kind: 'task.completed', actor, taskId, data: { revoked_leases: live } });
          return completed;
        });
        return { task, revokedLeases: await this.revokePendingLeases(taskId, actor) };
      },
      () => this.changed(taskId),
    );
  }

  /**
   * An admin ends a task: its live leases die (task_revoked) and it reads `revoked`. A task that has
   * already ended is left as it is (revoking twice is harmless), and `revokedLeases` is empty.
   * Two transactions, as complete.
   */
  async revoke(taskId: string, actor: string, comment?: string): Promise<{ task: Task; revokedLeases: string[] }> {
    return thenForget(
      async () => {
        const task = await this.db.transaction(async (tx) => {
          const task = await this.tasks.lock(tx, taskId);
          if (!task) throw new NotFound('no such task');
          if (task.state !== 'active') return task;
          const live = await this.revocation.countTaskLeases(tx, taskId);
          const revoked = await this.tasks.end(tx, taskId, 'revoked', 'revoked_by_admin', true);
          await appendAudit(tx, {
            kind: 'task.revoked',
            actor,
            taskId,
            data: { revoked_leases: live, ...(comment === undefined ? {} : { comment }) },
          });
          return revoked;
        });
        return { task, revokedLeases: await this.revokePendingLeases(taskId, actor) };
      },
      () => this.changed(taskId),
    );
  }

  /** The rows of an ended task's pending leases, if they are still pending (nobody else took them). */
  private async revokePendingLeases(taskId: string, actor: string): Promise<string[]> {
    return this.db.transaction(async (tx) => {
      const ended = await this.tasks.takePendingLeases(tx, taskId);
      if (ended === undefined) return [];
      return this.revocation.revokeTaskLeases(tx, taskId, pendingLeaseReason(ended), actor);
    });
  }

  private async owned(tx: Sql, workloadId: string, taskId: string): Promise<Task> {
    const task = await this.tasks.lock(tx, taskId);
    if (!task || task.workloadId !== workloadId) throw new NotFound('no such task');
    if (task.state !== 'active') throw new TaskNotActive(task.state);
    return task;
  }
}
