import type { JWK } from 'jose';
import { appendAudit } from '../audit/audit.js';
import { thenForget, type Database } from '../db/database.js';
import { NotFound } from '../errors/errors.js';
import type { LeaseRevocation } from '../leases/revocation.js';
import type { TaskStore } from '../tasks/task-store.js';
import type { Workload } from './workload.js';
import type { WorkloadStore } from './workload-store.js';

/** Admin operations on workloads, including the kill switch. */
export class Workloads {
  constructor(
    private readonly db: Database,
    private readonly store: WorkloadStore,
    private readonly tasks: TaskStore,
    private readonly revocation: LeaseRevocation,
    /** Told after every committed change, so caches of this replica drop the old row. */
    private readonly changed: (id: string) => void = () => {},
  ) {}

  async put(id: string, jwks: { keys: JWK[] }, enabled?: boolean): Promise<{ workload: Workload; created: boolean }> {
    return thenForget(() => this.db.transaction(async (tx) => {
      const result = await this.store.put(id, jwks, enabled, tx);
      await appendAudit(tx, {
        kind: 'workload.put',
        actor: 'admin',
        data: { workload_id: id, revision: result.workload.revision, enabled: result.workload.enabled, kids: jwks.keys.map((key) => key.kid ?? null) },
      });
      return result;
    }), () => this.changed(id));
  }

  async get(id: string): Promise<Workload> {
    const workload = await this.store.find(id);
    if (!workload) throw new NotFound('no such workload');
    return workload;
  }

  list(): Promise<Workload[]> {
    return this.store.list();
  }

  /**
   * The kill switch: the workload can no longer authenticate, and every task and lease it holds is
   * revoked (reason workload_revoked), in one transaction. DELETE does the same: a deleted workload
   * must not keep live credentials.
   */
  async revoke(id: string, kind: 'workload.revoked' | 'workload.deleted' = 'workload.revoked'): Promise<{ tasks: string[]; leases: string[] }> {
    return thenForget(() => this.db.transaction(async (tx) => {
      // Order matters: the workload row, then its tasks (waiting for in-flight permits, which hold
      // their task's lock), then the leases, read after those permits committed.
      const workload = await this.store.disable(id, tx);
      if (!workload) throw new NotFound('no such workload');
      const tasks = await this.tasks.revokeForWorkload(tx, id);
      const leases = await this.revocation.revokeWorkloadLeases(tx, id, 'workload_revoked', 'admin');
      await appendAudit(tx, { kind, actor: 'admin', data: { workload_id: id, revoked_tasks: tasks.length, revoked_leases: leases.length } });
      return { tasks, leases };
    }), () => this.changed(id));
  }
}
