import { appendAudit } from '../audit/index.js';
import type { Clock } from '../clock/index.js';
import { thenForget, type Database } from '../db/index.js';
import { lockWriter } from '../db/index.js';
import { InvalidRequest, NotFound } from '../errors/index.js';
import type { ToolBoundary } from './boundary.js';
import { buildCedarContext, type PolicyDecision, type PolicySource, type RequestFacts } from './cedar.js';
import type { CedarEngine } from './cedar-engine.js';
import { boundaryPolicyId, type GlobalPolicy } from './policy.js';
import type { PolicyStore } from './policy-store.js';

/** A Cedar decision and the global policy versions it was made under (to be re-checked on commit). */
export type KeyedPolicyDecision = PolicyDecision & { policiesKey: string };

/**
 * Global policy sets (admin CRUD) and the Cedar decision of a credential request. The enabled
 * global policies are remembered under their key (read with every request context): a request
 * naming a new key loads them once, and each (boundary version, global key) pair is parsed once.
 */
export class Policies {
  private globals: { key: string; sources: PolicySource[] } = { key: '', sources: [] };

  constructor(
    private readonly db: Database,
    private readonly store: PolicyStore,
    /** Cedar for credential requests and simulations (a child process in the broker). */
    private readonly cedar: CedarEngine,
    private readonly clock: Clock,
    /** Told after a global policy changed, so caches of this replica drop the old key. */
    private readonly changed: () => void = () => {},
    /** Told how long the Cedar step of each credential request took, in seconds. */
    private readonly observe: (seconds: number) => void = () => {},
    /** Cedar for validating policy text: apart from the hot path's, so a hostile write cannot stall it. */
    private readonly checks: Pick<CedarEngine, 'validate'> = cedar,
  ) {}

  /** `actor`: who, for the audit trail (`admin:<key id>`). */
  async put(id: string, policy: string, description: string | null, actor: string): Promise<{ policy: GlobalPolicy; created: boolean }> {
    const problems = await this.checks.validate(policy, await this.store.knownActions());
    if (problems.length > 0) throw invalidPolicy(problems);
    return thenForget(
      () =>
        this.db.transaction(async (tx) => {
          await lockWriter(tx, 'policy', id);
          const { policy: written, changed, created } = await this.store.put(id, { policy, description, enabled: true }, tx);
          if (changed)
            await appendAudit(tx, { kind: 'policy.put', actor, data: { policy_id: id, version: written.version, policy, description } });
          return { policy: written, created };
        }),
      () => this.forget(),
    );
  }

  async get(id: string): Promise<GlobalPolicy> {
    const policy = await this.store.current(id);
    if (!policy) throw new NotFound('no such policy');
    return policy;
  }

  list(): Promise<GlobalPolicy[]> {
    return this.store.list();
  }

  /** Disables the policy set: a new version, kept like every other. */
  async disable(id: string, actor: string): Promise<GlobalPolicy> {
    return thenForget(
      () =>
        this.db.transaction(async (tx) => {
          await lockWriter(tx, 'policy', id);
          const current = await this.store.current(id, tx);
          if (!current) throw new NotFound('no such policy');
          const { policy, changed } = await this.store.put(id, { ...current, enabled: false }, tx);
          if (changed) await appendAudit(tx, { kind: 'policy.disabled', actor, data: { policy_id: id, version: policy.version } });
          return policy;
        }),
      () => this.forget(),
    );
  }

  /**
   * The Cedar step of a request that passed the core checks, or undefined when nothing Cedar
   * applies (no boundary policy, no global one, no approval rule): such a request does not pay for
   * Cedar. `approvalRequired` is true when a deciding permit is annotated `@approval("required")`
   * or the boundary's approval rule holds, both over the one request context.
   * `policiesKey` is the key of the global policies as the request context read them.
   */
  async decide(facts: Omit<RequestFacts, 'at'>, boundary: ToolBoundary, policiesKey: string): Promise<KeyedPolicyDecision | undefined> {
    if (boundary.policy === null && policiesKey === '' && !boundary.approval) return undefined;
    const globals = boundary.policy === null && policiesKey === '' ? { key: '', sources: [] } : await this.globalsFor(policiesKey);
    const started = performance.now();
    const request = buildCedarContext({ ...facts, at: this.clock.now() });
    const sources: PolicySource[] =
      boundary.policy === null
        ? globals.sources
        : [...globals.sources, { id: boundaryPolicyId(boundary.id), version: boundary.version, text: boundary.policy, scope: 'boundary' }];
    const answer = await this.cedar.decide({
      set: sources.length === 0 ? undefined : { key: `${boundary.id}@${boundary.version}|${globals.key}`, tool: boundary.tool, sources },
      request,
      // Asked only of a permit: a denial needs no reviewer.
      condition: boundary.approval ? { key: `approval:${boundary.id}@${boundary.version}`, when: boundary.approval.when } : undefined,
    });
    if ('unknown' in answer) throw new Error('the policy engine lost a policy set it was sent');
    const { decision, conditionHolds: ruleHolds } = answer;
    this.observe((performance.now() - started) / 1000);
    return { ...decision, approvalRequired: decision.approvalRequired || ruleHolds, policiesKey: globals.key };
  }

  /** The enabled global policies under `key`, loaded when the key is new to this replica. */
  private async globalsFor(key: string): Promise<{ key: string; sources: PolicySource[] }> {
    if (this.globals.key === key) return this.globals;
    // The load may see a newer set than the read that named `key`; its own key then travels to the
    // committing statement, which refuses it if that is not current either.
    this.globals = await this.store.active();
    return this.globals;
  }

  /** The current global policies, for simulation and what-if (always a fresh read). */
  async activeGlobals(): Promise<{ key: string; sources: PolicySource[] }> {
    this.globals = await this.store.active();
    return this.globals;
  }

  private forget(): void {
    this.globals = { key: '\u0000changed', sources: [] };
    this.changed();
  }
}

export function invalidPolicy(problems: { message: string; line?: number; column?: number }[], field = 'policy'): InvalidRequest {
  const first = problems[0]!;
  const where = first.line !== undefined ? ` at line ${first.line}, column ${first.column}` : '';
  return new InvalidRequest(`${field}: ${first.message}${where}`, { field, problems });
}
