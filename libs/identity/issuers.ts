import { appendAudit } from '../audit/index.js';
import { thenForget, type Database } from '../db/index.js';
import { lockWriter } from '../db/index.js';
import { Conflict, NotFound } from '../errors/index.js';
import { subjectProblem, type Issuer, type IssuerDefinition } from './issuer.js';
import type { IssuerStore } from './issuer-store.js';
import type { Workloads } from './workloads.js';

/** Admin operations on trusted issuers. */
export class Issuers {
  constructor(
    private readonly db: Database,
    private readonly store: IssuerStore,
    private readonly workloads: Workloads,
    /** Told after every committed change, so caches of this replica drop the old row. */
    private readonly changed: (id: string) => void = () => {},
  ) {}

  /** `actor`: who, for the audit trail (`admin:<key id>`). */
  async put(
    id: string,
    definition: IssuerDefinition,
    enabled: boolean | undefined,
    actor: string,
  ): Promise<{ issuer: Issuer; created: boolean }> {
    return thenForget(
      () =>
        this.db.transaction(async (tx) => {
          await lockWriter(tx, 'issuer', id);
          // One iss, one issuer: the token's iss is how an issuer is found.
          const other = await this.store.otherWithIssuer(id, definition.issuer, tx);
          if (other !== undefined) throw new Conflict(`issuer: already trusted as issuer "${other}"`, { field: 'issuer' });
          const result = await this.store.put(id, definition, enabled, tx);
          // A new kind or trust domain must still fit every bound subject, or those workloads would be
          // locked out by a change that never said so.
          for (const workload of await this.workloads.boundTo(tx, id)) {
            const problem = subjectProblem(definition, workload.subject);
            if (problem)
              throw new Conflict(
                `workload "${workload.id}" is bound to subject ${workload.subject}, which would no longer fit: it ${problem}`,
                { field: definition.kind === 'spiffe' ? 'trust_domain' : 'kind' },
              );
          }
          await appendAudit(tx, {
            kind: 'issuer.put',
            actor,
            data: {
              issuer_id: id,
              revision: result.issuer.revision,
              enabled: result.issuer.enabled,
              issuer: definition.issuer,
              kind: definition.kind,
              trust_domain: definition.trustDomain,
              jwks_uri: definition.jwksUri,
              kids: definition.jwks?.keys.map((key) => key.kid ?? null) ?? null,
              audiences: definition.audiences,
            },
          });
          return result;
        }),
      () => this.changed(id),
    );
  }

  async get(id: string): Promise<Issuer> {
    const issuer = await this.store.find(id);
    if (!issuer) throw new NotFound('no such issuer');
    return issuer;
  }

  list(): Promise<Issuer[]> {
    return this.store.list();
  }

  /**
   * DELETE: withdrawing trust kills what the issuer vouched for. In one transaction the issuer is
   * disabled (its row stays: bindings and history refer to it) and every enabled workload bound to it
   * gets the kill switch: disabled, its tasks and leases revoked (workload_revoked). Neither comes back
   * by re-applying configuration; `"enabled": true` on the issuer and on each workload does.
   */
  async withdraw(id: string, actor: string): Promise<{ issuer: Issuer; workloads: string[]; tasks: number; leases: number }> {
    const revokedWorkloads: string[] = [];
    try {
      return await thenForget(
        () =>
          this.db.transaction(async (tx) => {
            await lockWriter(tx, 'issuer', id);
            // The issuer row first (a concurrent binding holds it FOR SHARE), then the bound workloads.
            const issuer = await this.store.disable(id, tx);
            if (!issuer) throw new NotFound('no such issuer');
            const bound = await this.workloads.lockBoundTo(tx, id);
            let tasks = 0;
            let leases = 0;
            for (const workloadId of bound) {
              const revoked = await this.workloads.revokeIn(tx, workloadId, actor);
              if (!revoked) continue;
              revokedWorkloads.push(workloadId);
              tasks += revoked.tasks.length;
              leases += revoked.leases.length;
              await appendAudit(tx, {
                kind: 'workload.revoked',
                actor,
                data: {
                  workload_id: workloadId,
                  issuer_id: id,
                  revoked_tasks: revoked.tasks.length,
                  revoked_leases: revoked.leases.length,
                },
              });
            }
            await appendAudit(tx, {
              kind: 'issuer.withdrawn',
              actor,
              data: {
                issuer_id: id,
                revision: issuer.revision,
                revoked_workloads: revokedWorkloads,
                revoked_tasks: tasks,
                revoked_leases: leases,
              },
            });
            return { issuer, workloads: revokedWorkloads, tasks, leases };
          }),
        () => this.changed(id),
      );
    } finally {
      for (const workloadId of revokedWorkloads) this.workloads.forget(workloadId);
    }
  }
}
