import {
  approvalConditionProblems,
  CedarEvaluator,
  validatePolicyText,
  type CedarRequest,
  type PolicyDecision,
  type PolicyProblem,
  type PolicySource,
} from './cedar.js';
import type { ParamsSchemas } from './boundary.js';

/**
 * One Cedar step of a credential request (or a simulation): the request's policy set, named by
 * its key, and the boundary's approval condition. `sources` may be left out when the engine has
 * seen the key: it then answers `{ unknown: true }` if it has not (or no longer has) the set.
 */
export interface DecideInput {
  set?: { key: string; tool: string; sources?: readonly PolicySource[] | undefined } | undefined;
  request: CedarRequest;
  /** Asked only of an allow: whether the boundary's approval rule holds. */
  condition?: { key: string; when: string } | undefined;
}

export type DecideOutput = { decision: PolicyDecision; conditionHolds: boolean } | { unknown: true };

/** A slice of a what-if: rows with the key of their set (null: nothing Cedar applies, allowed). */
export interface ReplayBatch {
  sets: Record<string, { tool: string; sources: readonly PolicySource[] }>;
  rows: { set: string | null; request: CedarRequest }[];
}

/** What the broker asks of Cedar; run in a child process (cedar-process.ts) or in this one. */
export interface CedarEngine {
  decide(input: DecideInput): Promise<DecideOutput>;
  /**
   * Problems of policy text (bounds, parse, schema); none means valid. With `paramsSchemas` (a
   * boundary's own policy), an action that declares its arguments has its own Cedar params type.
   */
  validate(text: string, actions: readonly string[], paramsSchemas?: ParamsSchemas | null): Promise<PolicyProblem[]>;
  /** Problems of an approval condition; none means usable. */
  conditionProblems(when: string): Promise<PolicyProblem[]>;
  /** Per row, whether the proposal allows it. */
  replay(batch: ReplayBatch): Promise<boolean[]>;
}

const ALLOW: PolicyDecision = { decision: 'allow', reasons: [], determiningPolicies: [], errors: [], approvalRequired: false };

/** Cedar in this process: what a child process runs, and what unit tests use directly. */
export class LocalCedar implements CedarEngine {
  constructor(private readonly evaluator = new CedarEvaluator(1000)) {}

  decide(input: DecideInput): Promise<DecideOutput> {
    return Promise.resolve(this.decideNow(input));
  }

  decideNow({ set, request, condition }: DecideInput): DecideOutput {
    let decision = ALLOW;
    if (set) {
      const compiled = this.evaluator.known(set.key) ?? (set.sources ? this.evaluator.compile(set.key, set.sources, set.tool) : undefined);
      if (!compiled) return { unknown: true };
      decision = this.evaluator.evaluate(compiled, request);
    }
    const conditionHolds =
      decision.decision === 'allow' && condition !== undefined && this.evaluator.conditionHolds(condition.key, condition.when, request);
    return { decision, conditionHolds };
  }

  validate(text: string, actions: readonly string[], paramsSchemas?: ParamsSchemas | null): Promise<PolicyProblem[]> {
    return Promise.resolve(validatePolicyText(text, actions, paramsSchemas));
  }

  conditionProblems(when: string): Promise<PolicyProblem[]> {
    return Promise.resolve(approvalConditionProblems(when));
  }

  replay(batch: ReplayBatch): Promise<boolean[]> {
    return Promise.resolve(this.replayNow(batch));
  }

  replayNow({ sets, rows }: ReplayBatch): boolean[] {
    const allowed: boolean[] = [];
    for (const { set: key, request } of rows) {
      const source = key === null ? undefined : sets[key];
      if (key === null || !source) {
        allowed.push(true);
        continue;
      }
      const set = this.evaluator.compile(key, source.sources, source.tool);
      // Every policy was scoped to other tools: nothing applies, as when there is no set at all.
      allowed.push(Object.keys(set.policies).length === 0 || this.evaluator.evaluate(set, request).decision === 'allow');
    }
    return allowed;
  }
}
