import { appendAudit } from '../audit/index.js';
import { thenForget, type Database, type Sql } from '../db/index.js';
import { lockWriter } from '../db/index.js';
import { Conflict, InvalidRequest, NotFound } from '../errors/index.js';
import { subjectProblem } from './issuer.js';
import type { IssuerStore } from './issuer-store.js';
import type { Workload, WorkloadRateLimit } from './workload.js';
import type { WorkloadCredentials, WorkloadStore } from './workload-store.js';

/**
 * What the kill switch ends besides the workload row: its open tasks, then its live leases, inside
 * the caller's transaction. Tasks and leases sit above identity, so identity declares this port and
 * the composition root fills it.
 */
export interface WorkloadHoldings {
  revokeTasks(tx: Sql, workloadId: string): Promise<string[]>;
  revokeLeases(tx: Sql, workloadId: string, actor: string): Promise<string[]>;
}

export interface WorkloadsOptions {
  db: Database;
  store: WorkloadStore;
  issuers: IssuerStore;
  holdings: WorkloadHoldings;
  /** Told after every committed change, so caches of this replica drop the old row. */
  changed?: (id: string) => void;
}

/** Admin operations on workloads, including the kill switch. */
export class Workloads {
  private readonly db: Database;
  private readonly store: WorkloadStore;
  private readonly issuers: IssuerStore;
  private readonly holdings: WorkloadHoldings;
  private readonly changed: (id: string) => void;

  constructor(options: WorkloadsOptions) {
    this.db = options.db;
    this.store = options.store;
    this.issuers = options.issuers;
    this.holdings = options.holdings;
    this.changed = options.changed ?? (() => {});
  }

  /**
   * Registers keys for a workload, or binds it to a trusted issuer's subject, with its own rate
   * limit (null: the service's). A binding is checked against the issuer inside the transaction,
   * under a share lock on the issuer row, so it cannot slip in beside a concurrent DELETE of the issuer.
   */
  async put(
    id: string,
    credentials: WorkloadCredentials,
    enabled: boolean | undefined,
    rateLimit: WorkloadRateLimit | null,
    /** Who, for the audit trail (`admin:<key id>`). */
    actor: string,
  ): Promise<{ workload: Workload; created: boolean }> {
    return thenForget(
      () =>
        this.db.transaction(async (tx) => {
          await lockWriter(tx, 'workload', id);
          if ('issuerId' in credentials) await this.checkBinding(tx, id, credentials.issuerId, credentials.subject);
          const result = await this.store.put(id, credentials, enabled, rateLimit, tx).catch((error: unknown) => {
            // Two bindings of one subject racing: the unique index decides, the loser gets the same 409.
            if (isUniqueViolation(error)) throw new Conflict('subject: already bound to another workload', { field: 'subject' });
            throw error;
          });
          await appendAudit(tx, {
            kind: 'workload.put',
            actor,
            data: {
              workload_id: id,
              revision: result.workload.revision,
              enabled: result.workload.enabled,
              rate_limit: rateLimit,
              ...('jwks' in credentials
                ? { kids: credentials.jwks.keys.map((key) => key.kid ?? null) }
                : { issuer_id: credentials.issuerId, subject: credentials.subject }),
            },
          });
          return result;
        }),
      () => this.changed(id),
    );
  }

  private async checkBinding(tx: Sql, id: string, issuerId: string, subject: string): Promise<void> {
    const issuer = await this.issuers.findForBinding(issuerId, tx);
    if (!issuer) throw new InvalidRequest(`issuer: no trusted issuer "${issuerId}"`, { field: 'issuer' });
    if (!issuer.enabled)
      throw new InvalidRequest(`issuer: the issuer "${issuerId}" was withdrawn (DELETE); PUT it with "enabled": true first`, {
        field: 'issuer',
      });
    const problem = subjectProblem(issuer, subject);
    if (problem) throw new InvalidRequest(`subject: ${problem}`, { field: 'subject' });
    const bound = await this.store.findBound(issuerId, subject, tx);
    if (bound && bound.id !== id) throw new Conflict(`subject: already bound to workload "${bound.id}"`, { field: 'subject' });
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
  async revoke(
    id: string,
    actor: string,
    kind: 'workload.revoked' | 'workload.deleted' = 'workload.revoked',
  ): Promise<{ tasks: string[]; leases: string[] }> {
    return thenForget(
      () =>
        this.db.transaction(async (tx) => {
          await lockWriter(tx, 'workload', id);
          const revoked = await this.revokeIn(tx, id, actor);
          if (!revoked) throw new NotFound('no such workload');
          await appendAudit(tx, {
            kind,
            actor,
            data: { workload_id: id, revoked_tasks: revoked.tasks.length, revoked_leases: revoked.leases.length },
          });
          return revoked;
        }),
      () => this.changed(id),
    );
  }

  /**
   * The kill switch inside a caller's transaction (also used when an issuer is withdrawn); undefined
   * when there is no such workload. The caller tells `forget` once it is over.
   */
  async revokeIn(tx: Sql, id: string, actor: string): Promise<{ tasks: string[]; leases: string[] } | undefined> {
    // Order matters: the workload row, then its tasks (waiting for in-flight permits, which hold
    // their task's lock), then the leases, read after those permits committed.
    const workload = await this.store.disable(id, tx);
    if (!workload) return undefined;
    const tasks = await this.holdings.revokeTasks(tx, id);
    const leases = await this.holdings.revokeLeases(tx, id, actor);
    return { tasks, leases };
  }

  /** Ids of the enabled workloads bound to an issuer, row-locked until the transaction ends. */
  lockBoundTo(tx: Sql, issuerId: string): Promise<string[]> {
    return this.store.lockBoundTo(issuerId, tx);
  }

  /** Every workload bound to an issuer (enabled or not), share-locked until the transaction ends. */
  boundTo(tx: Sql, issuerId: string): Promise<Array<{ id: string; subject: string }>> {
    return this.store.boundTo(issuerId, tx);
  }

  /** Drops this replica's cached rows of a workload changed inside another service's transaction. */
  forget(id: string): void {
    this.changed(id);
  }
}

function isUniqueViolation(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; typeof e === 'object' && e !== null && depth < 4; depth++) {
    if ((e as { code?: unknown }).code === '23505') return true;
    e = (e as { driverError?: unknown; cause?: unknown }).driverError ?? (e as { cause?: unknown }).cause;
  }
  return false;
}
