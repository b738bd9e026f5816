import { appendAudit } from '../audit/index.js';
import { thenForget, type Database } from '../db/index.js';
import { lockWriter } from '../db/index.js';
import { InvalidRequest, NotFound } from '../errors/index.js';
import type { Sql } from '../db/index.js';
import type { BoundaryDefinition, ToolBoundary } from './boundary.js';
import type { BoundaryStore } from './boundary-store.js';
import type { CedarEngine } from './cedar-engine.js';
import { invalidPolicy } from './policies.js';

/**
 * Disabling or deleting a boundary revokes its live leases in the same transaction. Leases sit above
 * policy, so policy declares this port and the composition root fills it with the lease revocation.
 */
export interface BoundaryLeases {
  revokeBoundaryLeases(tx: Sql, boundaryId: string, actor: string): Promise<string[]>;
}

/** Admin operations on tool boundaries. */
export class Boundaries {
  constructor(
    private readonly db: Database,
    private readonly store: BoundaryStore,
    private readonly revocation: BoundaryLeases,
    /** Cedar that validates the policy and the approval condition (a child process in the broker). */
    private readonly checks: Pick<CedarEngine, 'validate' | 'conditionProblems'>,
    /** Told after a boundary changed, so caches of this replica drop it. */
    private readonly changed: (id: string) => void = () => {},
  ) {}

  /** A PUT that disables a boundary revokes its live leases, as DELETE does. `actor`: who, for the audit trail. */
  async put(
    id: string,
    definition: BoundaryDefinition,
    actor: string,
  ): Promise<{ boundary: ToolBoundary; created: boolean; revokedLeases: string[] }> {
    // An invalid policy is refused before anything is written: the valid version stays current.
    if (definition.policy !== null) {
      const problems = await this.checks.validate(definition.policy, definition.actions, definition.paramsSchemas);
      if (problems.length > 0) throw invalidPolicy(problems);
    }
    if (definition.approval) {
      const [problem] = await this.checks.conditionProblems(definition.approval.when);
      if (problem) {
        const where = problem.line !== undefined ? ` at line ${problem.line}, column ${problem.column}` : '';
        throw new InvalidRequest(`approval.when: is not a valid Cedar condition: ${problem.message}${where}`, {
          field: 'approval.when',
          problems: [problem],
        });
      }
    }
    return thenForget(
      () =>
        this.db.transaction(async (tx) => {
          await lockWriter(tx, 'boundary', id);
          const { boundary, changed, created } = await this.store.put(id, definition, tx);
          let revokedLeases: string[] = [];
          if (changed) {
            await appendAudit(tx, { kind: 'boundary.put', actor, data: { boundary_id: id, version: boundary.version, definition } });
            if (!boundary.enabled) revokedLeases = await this.revocation.revokeBoundaryLeases(tx, id, actor);
          }
          return { boundary, created, revokedLeases };
        }),
      () => this.changed(id),
    );
  }

  async get(id: string): Promise<ToolBoundary> {
    const boundary = await this.store.current(id);
    if (!boundary) throw new NotFound('no such tool boundary');
    return boundary;
  }

  list(): Promise<ToolBoundary[]> {
    return this.store.list();
  }

  /** Disables the boundary (a new version) and revokes every live lease issued under it. */
  async disable(id: string, actor: string): Promise<{ boundary: ToolBoundary; revokedLeases: string[] }> {
    return thenForget(
      () =>
        this.db.transaction(async (tx) => {
          await lockWriter(tx, 'boundary', id);
          const current = await this.store.current(id, tx);
          if (!current) throw new NotFound('no such tool boundary');
          const { boundary, changed } = await this.store.put(id, { ...current, enabled: false }, tx);
          if (changed) await appendAudit(tx, { kind: 'boundary.disabled', actor, data: { boundary_id: id, version: boundary.version } });
          const revokedLeases = await this.revocation.revokeBoundaryLeases(tx, id, actor);
          return { boundary, revokedLeases };
        }),
      () => this.changed(id),
    );
  }
}
