import type { Sql } from '../db/index.js';
import { appendEvents } from '../audit/index.js';
import { insertSelect } from '../db/index.js';
import { uuidv7 } from '../ids/index.js';
import type { Task, TaskEvent } from './task.js';

const COLUMNS = `id, workload_id, intent, subject, context,
  CASE WHEN state = 'active' AND expires_at <= now() THEN 'expired' ELSE state END AS state,
  created_at, expires_at, ended_at, end_reason`;

/**
 * Counts a drift denial against its task, as a CTE body: the task's drift count goes up by one
 * under the task's row lock, so concurrent denials count exactly, and the denial that reaches
 * `threshold` ends the task (`revoked`, drift_detected). Only while the task is active and `when`
 * holds (the denial was written). Returns id, workload_id, state, drift_count; insertDriftDenials
 * records which denial it was. DecisionLedger.recordDenial writes it in the denial's own statement.
 */
export function countDriftDenial(p: { taskId: string; threshold: string; when: string }): string {
  return `UPDATE tasks SET ${countedSet(p.threshold)}
          WHERE id = ${p.taskId} AND ${p.threshold} IS NOT NULL AND state = 'active' AND expires_at > now() AND ${p.when}
         RETURNING id, workload_id, state, drift_count`;
}

/**
 * countDriftDenial for many denials in one statement (DecisionLedger's coalesced denials), as a CTE
 * body: `from` is a FROM item named `c` with decision_id, task_id and drift_threshold, at most one
 * row per task, each a denial that was written, on a task the caller has locked (in id order,
 * beforehand) and found active and unexpired as locked; `ids` is an array of the locked tasks' ids
 * (a superset is fine: the join with `c` decides).
 * Returns what countDriftDenial returns, then the columns of `c` that `also` names.
 *
 * The update finds its rows by primary key alone (`ids`): a WHERE that implied the active tasks'
 * partial index let the planner, without statistics on tasks, walk every active task per batch.
 */
export function countDriftDenials(p: { from: string; also: string; ids: string }): string {
  return `UPDATE tasks SET ${countedSet('c.drift_threshold')}
           FROM ${p.from}
          WHERE tasks.id = ANY (${p.ids}) AND tasks.id = c.task_id AND c.drift_threshold IS NOT NULL
         RETURNING tasks.id, tasks.workload_id, tasks.state, tasks.drift_count, ${p.also}`;
}

/** The SET list of a counted denial: one more, and the task ends on reaching `threshold`. */
function countedSet(threshold: string): string {
  const reached = `tasks.drift_count + 1 >= ${threshold}`;
  return `drift_count = tasks.drift_count + 1,
                state = CASE WHEN ${reached} THEN 'revoked' ELSE tasks.state END,
                ended_at = CASE WHEN ${reached} THEN now() ELSE tasks.ended_at END,
                end_reason = CASE WHEN ${reached} THEN 'drift_detected' ELSE tasks.end_reason END`;
}

/**
 * The INSERT of counted drift denials, as a CTE body, from the rows countDriftDenial(s) returned
 * (`from`): which decision (`decisionId`, an expression over them) was the task's `drift_count`th.
 * A row per denial rather than an array on the task: appending to a toasted array rewrote it whole.
 */
export function insertDriftDenials(decisionId: string, from: string): string {
  return `INSERT INTO task_drift_denials (task_id, decision_id, n) SELECT id, ${decisionId}, drift_count ${from}`;
}

/**
 * The ids of a suspended task's counted denials in the order they were counted, as an SQL
 * expression over a row countDriftDenial(s) returned (`row`, its alias) and the suspending
 * denial's id (`decisionId`). The function reads them with a snapshot of its own: the ones counted
 * by the transactions this statement waited for (on the task's row lock) committed after the
 * statement's snapshot was taken.
 */
export function driftDenialIds(row: string, decisionId: string): string {
  return `task_drift_denial_ids(${row}.id, ${decisionId}, ${row}.drift_count)`;
}

type TaskEventColumn = 'id' | 'task_id' | 'kind' | 'intent' | 'reason';

/** The INSERT of task events, as a CTE body, for a statement that ends a task along with other work. */
export function insertTaskEvents(values: Record<TaskEventColumn, string>, from: string): string {
  return insertSelect<TaskEventColumn>('task_events', values, from);
}

/** SQL for tasks and their events, their only writer (countDriftDenial, insertDriftDenials, insertTaskEvents: see above). */
export class TaskStore {
  constructor(private readonly sql: Sql) {}

  /**
   * Opens a task for a workload that is still enabled, holding a share lock on the workload row so a
   * concurrent kill switch either sees this task or makes the insert write nothing (undefined).
   */
  async insert(
    tx: Sql,
    task: { workloadId: string; intent: string; subject: string; context: Record<string, unknown>; ttl: number },
  ): Promise<Task | undefined> {
    const id = uuidv7();
    const { rows } = await tx.query<TaskRow>(
      `WITH w AS (SELECT id FROM workloads WHERE id = $2 AND enabled FOR SHARE)
       INSERT INTO tasks (id, workload_id, intent, subject, context, state, created_at, expires_at)
       SELECT $1::uuid, w.id, $3::text, $4::text, $6::jsonb, 'active', now(), now() + make_interval(secs => $5::float8) FROM w
       RETURNING ${COLUMNS}`,
      [id, task.workloadId, task.intent, task.subject, task.ttl, JSON.stringify(task.context)],
    );
    if (!rows[0]) return undefined;
    await this.addEvent(tx, id, 'opened', task.intent, null);
    return toTask(rows[0]);
  }

  async find(id: string, sql: Sql = this.sql): Promise<Task | undefined> {
    const { rows } = await sql.query<TaskRow>(`SELECT ${COLUMNS} FROM tasks WHERE id = $1`, [id]);
    return rows[0] && toTask(rows[0]);
  }

  /** Reads and row-locks a task, so intent changes, completion and revocation of one task queue up. */
  async lock(tx: Sql, id: string): Promise<Task | undefined> {
    const { rows } = await tx.query<TaskRow>(`SELECT ${COLUMNS} FROM tasks WHERE id = $1 FOR UPDATE`, [id]);
    return rows[0] && toTask(rows[0]);
  }

  async setIntent(tx: Sql, id: string, intent: string): Promise<Task> {
    const { rows } = await tx.query<TaskRow>(`UPDATE tasks SET intent = $2 WHERE id = $1 RETURNING ${COLUMNS}`, [id, intent]);
    await this.addEvent(tx, id, 'intent_changed', intent, 'journey_changed');
    return toTask(rows[0]!);
  }

  /**
   * `leasesPending`: the task's live leases are left for revokePendingLeases (Tasks.complete and
   * Tasks.revoke); they read revoked from this commit on (EFFECTIVE_STATE in libs/leases).
   */
  async end(tx: Sql, id: string, state: 'completed' | 'revoked' | 'expired', reason: string, leasesPending = false): Promise<Task> {
    const { rows } = await tx.query<TaskRow>(
      `WITH ended AS (
         UPDATE tasks SET state = $2, ended_at = now(), end_reason = $3, leases_pending = $4 WHERE id = $1 RETURNING *
       ), event AS (
         ${appendEvents({ type: "'task.ended'", task_id: 'id', workload_id: 'workload_id', reason: '$3' }, 'FROM ended')}
       )
       SELECT ${COLUMNS} FROM ended`,
      [id, state, reason, leasesPending],
    );
    await this.addEvent(tx, id, state, null, reason);
    return toTask(rows[0]!);
  }

  /**
   * Takes the task's pending lease revocation, if it still has one: clears the flag and keeps the
   * row locked until the caller's transaction ends, so the request that ended the task and the
   * sweeper (on any replica) never both revoke its leases. Returns how the task ended.
   */
  async takePendingLeases(tx: Sql, id: string): Promise<'completed' | 'revoked' | undefined> {
    const { rows } = await tx.query<{ state: 'completed' | 'revoked' }>(
      `UPDATE tasks SET leases_pending = false WHERE id = $1 AND leases_pending RETURNING state`,
      [id],
    );
    return rows[0]?.state;
  }

  /**
   * Tasks whose leases were left pending more than `graceS` seconds ago (the replica that ended
   * them died before revoking their rows), oldest first; SKIP LOCKED, so a task whose revocation
   * is running now is left to it.
   */
  async staleLeasesPending(tx: Sql, limit: number, graceS: number): Promise<string[]> {
    const { rows } = await tx.query<{ id: string }>(
      `SELECT id FROM tasks WHERE leases_pending AND ended_at <= now() - make_interval(secs => $2)
        ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`,
      [limit, graceS],
    );
    return rows.map((row) => row.id);
  }

  /**
   * Ends every still-active task of a workload (the kill switch); returns their ids. The tasks are
   * locked in id order first, the order in which a batch of permits share-locks its tasks
   * (DecisionLedger): an UPDATE alone locks in whatever order its plan finds the rows, and could
   * hold one task a batch waits for while waiting for another that batch holds.
   */
  async revokeForWorkload(tx: Sql, workloadId: string): Promise<string[]> {
    const { rows } = await tx.query<{ id: string }>(
      `WITH locked AS MATERIALIZED (
         SELECT id FROM tasks WHERE workload_id = $1 AND state = 'active' ORDER BY id FOR NO KEY UPDATE
       ), ended AS (
         UPDATE tasks SET state = 'revoked', ended_at = now(), end_reason = 'workload_revoked'
          WHERE id IN (SELECT id FROM locked) AND state = 'active' RETURNING id, workload_id
       ), event AS (
         ${appendEvents({ type: "'task.ended'", task_id: 'id', workload_id: 'workload_id', reason: "'workload_revoked'" }, 'FROM ended')}
       )
       SELECT id FROM ended`,
      [workloadId],
    );
    for (const { id } of rows) await this.addEvent(tx, id, 'revoked', null, 'workload_revoked');
    return rows.map((row) => row.id);
  }

  /** Claims up to `limit` active tasks past their time; SKIP LOCKED so replicas share the work. */
  async claimExpired(tx: Sql, limit: number): Promise<string[]> {
    const { rows } = await tx.query<{ id: string }>(
      `SELECT id FROM tasks WHERE state = 'active' AND expires_at <= now() ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED`,
      [limit],
    );
    return rows.map((row) => row.id);
  }

  async events(id: string, sql: Sql = this.sql): Promise<TaskEvent[]> {
    const { rows } = await sql.query<TaskEvent>('SELECT id, kind, intent, reason, at FROM task_events WHERE task_id = $1 ORDER BY id', [
      id,
    ]);
    return rows.map((row) => ({ ...row, at: new Date(row.at) }));
  }

  private async addEvent(tx: Sql, taskId: string, kind: TaskEvent['kind'], intent: string | null, reason: string | null): Promise<void> {
    await tx.query('INSERT INTO task_events (id, task_id, kind, intent, reason) VALUES ($1, $2, $3, $4, $5)', [
      uuidv7(),
      taskId,
      kind,
      intent,
      reason,
    ]);
  }
}

interface TaskRow {
  id: string;
  workload_id: string;
  intent: string;
  subject: string;
  context: Record<string, unknown>;
  state: Task['state'];
  created_at: Date;
  expires_at: Date;
  ended_at: Date | null;
  end_reason: string | null;
}

function toTask(row: TaskRow): Task {
  return {
    id: row.id,
    workloadId: row.workload_id,
    intent: row.intent,
    subject: row.subject,
    context: row.context,
    state: row.state,
    createdAt: new Date(row.created_at),
    expiresAt: new Date(row.expires_at),
    endedAt: row.ended_at ? new Date(row.ended_at) : null,
    endReason: row.end_reason,
  };
}
