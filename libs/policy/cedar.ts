import {
  checkParsePolicySet,
  policySetTextToParts,
  policyToJson,
  preparsePolicySet,
  statefulIsAuthorized,
  validate,
  type CedarValueJson,
  type DetailedError,
  type EntityJson,
} from '@cedar-policy/cedar-wasm/nodejs';
import { randomBytes } from 'node:crypto';
import { cedarBoundsProblem } from './cedar-bounds.js';
import { schemaFor } from './cedar-schema.js';
import type { ParamsSchemas, ToolBoundary } from './boundary.js';

/** Cedar text under an id and version: a global policy set, or a boundary's own policy. */
export interface PolicySource {
  /** A global policy set's id, or `boundary:<id>` for a boundary's own policy. */
  id: string;
  version: number;
  text: string;
  /**
   * A boundary's own policy (or its approval condition) follows Cedar's default deny; a global
   * set of forbids only is a guardrail: one global forbid must not deny every boundary.
   */
  scope: 'global' | 'boundary';
}

export interface PolicyRef {
  id: string;
  version: number;
}

export type PolicyDenyReason = 'policy_forbid' | 'policy_no_permit';

export interface PolicyDecision {
  decision: 'allow' | 'deny';
  /** Empty on allow; one reason on deny. */
  reasons: PolicyDenyReason[];
  /** The policy sets whose satisfied policies decided: the permits of an allow, the forbids of a deny. */
  determiningPolicies: PolicyRef[];
  /** Policies that failed to evaluate (Cedar skips them); a failing forbid denies (fail closed). */
  errors: string[];
  /** An allow that a satisfied permit annotated `@approval("required")` decided: a human must approve it. */
  approvalRequired: boolean;
}

/** The facts of one request, in Tollgate's words; `buildCedarContext` turns them into Cedar's. */
export interface RequestFacts {
  workloadId: string;
  task: { intent: string; subject: string; ageSeconds: number; denials: number };
  boundary: Pick<ToolBoundary, 'id' | 'tool' | 'sensitivity' | 'actions' | 'intents'>;
  action: string;
  resource: string | null;
  params: unknown;
  purpose: string | null;
  /** The request carries an approved approval bound to exactly this request. */
  approved: boolean;
  /** When the request is decided, in milliseconds since the epoch. */
  at: number;
}

/** What `statefulIsAuthorized` is asked, minus the policy set: policies and approval conditions alike. */
export interface CedarRequest {
  principal: { type: 'Workload'; id: string };
  action: { type: 'Action'; id: string };
  resource: { type: 'Tool'; id: string };
  context: Record<string, CedarValueJson>;
  entities: EntityJson[];
}

/**
 * The request as Cedar sees it (the model of tollgate.cedarschema): principal `Workload::"<id>"`,
 * action `Action::"<action>"`, resource `Tool::"<tool>"` carrying its boundary's attributes, and the
 * context. `now` is a record of UTC integers, not Cedar's datetime: "business hours" needs the hour
 * and the weekday, which the datetime extension cannot extract.
 */
export function buildCedarContext(facts: RequestFacts): CedarRequest {
  const at = new Date(facts.at);
  const context: Record<string, CedarValueJson> = {
    intent: facts.task.intent,
    subject: facts.task.subject,
    boundary: facts.boundary.id,
    params: toCedarRecord(facts.params),
    sensitivity: facts.boundary.sensitivity,
    task_age_s: Math.max(0, Math.floor(facts.task.ageSeconds)),
    denials_in_task: facts.task.denials,
    approved: facts.approved,
    now: { hour: at.getUTCHours(), minute: at.getUTCMinutes(), weekday: at.getUTCDay(), unix: Math.floor(facts.at / 1000) },
  };
  if (facts.resource !== null) context.resource = facts.resource;
  if (facts.purpose !== null) context.purpose = facts.purpose;
  const tool = { type: 'Tool' as const, id: facts.boundary.tool };
  return {
    principal: { type: 'Workload', id: facts.workloadId },
    action: { type: 'Action', id: facts.action },
    resource: tool,
    context,
    entities: [
      {
        uid: tool,
        attrs: {
          boundary: facts.boundary.id,
          sensitivity: facts.boundary.sensitivity,
          actions: facts.boundary.actions.slice(),
          intents: facts.boundary.intents.slice(),
        },
        parents: [],
      },
    ],
  };
}

/**
 * Params are the bot's JSON; Cedar values are stricter. Integers stay numbers (Cedar Longs), other
 * numbers become strings, nulls are dropped, and members starting `__` are dropped: Cedar reads
 * `{"__entity": ...}` and `{"__extn": ...}` as entity references and extension values, which a bot
 * must not be able to forge.
 */
function toCedarRecord(value: unknown): Record<string, CedarValueJson> {
  const converted = toCedarValue(value, 0);
  return converted !== undefined && typeof converted === 'object' && converted !== null && !Array.isArray(converted)
    ? (converted as Record<string, CedarValueJson>)
    : {};
}

function toCedarValue(value: unknown, depth: number): CedarValueJson | undefined {
  if (depth > 16) return undefined;
  if (typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') return Number.isSafeInteger(value) ? value : String(value);
  if (Array.isArray(value)) {
    const list: CedarValueJson[] = [];
    for (const item of value) {
      const converted = toCedarValue(item, depth + 1);
      if (converted !== undefined) list.push(converted);
    }
    return list;
  }
  if (typeof value === 'object' && value !== null) {
    const record: Record<string, CedarValueJson> = {};
    for (const [key, member] of Object.entries(value)) {
      if (key.startsWith('__')) continue;
      const converted = toCedarValue(member, depth + 1);
      if (converted !== undefined) record[key] = converted;
    }
    return record;
  }
  return undefined;
}

/** A Cedar problem with a policy, located in the text that was written. */
export interface PolicyProblem {
  message: string;
  line?: number;
  column?: number;
}

/**
 * Parses and validates policy text against the schema with these actions. Returns every problem
 * Cedar found, in Cedar's words, each with the line and column in `text`; none means valid.
 */
export function validatePolicyText(text: string, actions: Iterable<string>, paramsSchemas?: ParamsSchemas | null): PolicyProblem[] {
  // Bounded first: text too deep or too long for Cedar's WASM stack never reaches Cedar.
  const bounds = cedarBoundsProblem(text);
  if (bounds) return [bounds];
  const parsed = checkParsePolicySet({ staticPolicies: text });
  if (parsed.type === 'failure') return parsed.errors.map((error) => locate(text, error));
  const parts = policySetTextToParts(text);
  if (parts.type === 'failure') return parts.errors.map((error) => locate(text, error));
  if (parts.policy_templates.length > 0) return [{ message: 'policy templates are not supported; write static policies' }];
  if (parts.policies.length === 0) return [{ message: 'the policy set has no policies' }];
  for (const policy of parts.policies) {
    const json = policyToJson(policy);
    const approval = json.type === 'success' ? json.json.annotations?.[APPROVAL_ANNOTATION] : undefined;
    if (approval === undefined) continue;
    if (approval !== 'required' || (json.type === 'success' && json.json.effect === 'forbid')) {
      return [{ message: `@${APPROVAL_ANNOTATION}("required") is the only approval annotation, and only on a permit` }];
    }
  }
  const answer = validate({
    schema: schemaFor(actions, paramsSchemas),
    policies: { staticPolicies: text },
    validationSettings: { mode: 'strict' },
  });
  if (answer.type === 'failure') return answer.errors.map((error) => locate(text, error));
  return answer.validationErrors.map(({ error }) => locate(text, error));
}

/** A permit carrying `@approval("required")` makes the requests it decides wait for a human. */
const APPROVAL_ANNOTATION = 'approval';

const CONDITION_PREFIX = 'permit(principal, action, resource) when { ';
const MAX_CONDITION = 4096;

/**
 * A boundary's approval rule is a Cedar condition over the same request as policies, written as
 * the body of a `when` clause: it runs as the one policy `permit(principal, action, resource) when
 * { <condition> };`, so "allow" means the request needs a human's approval.
 */
function conditionPolicy(when: string): string {
  return `${CONDITION_PREFIX}${when} };`;
}

/**
 * Why a condition cannot be used, in Cedar's own words with the line and column in the condition;
 * none when it can. Parsed, not schema-validated: a condition may read an optional parameter
 * without `has` (it then errors on a request without it, which requires approval: fail closed).
 * Exactly one policy must come out: a condition that closes the brace and opens another is refused.
 */
export function approvalConditionProblems(when: string): PolicyProblem[] {
  const bounded = approvalConditionBounds(when);
  if (bounded.length > 0) return bounded;
  const text = conditionPolicy(when);
  const parsed = checkParsePolicySet({ staticPolicies: text });
  if (parsed.type === 'failure') return parsed.errors.map((error) => inCondition(locate(text, error)));
  const parts = policySetTextToParts(text);
  if (parts.type === 'failure') return parts.errors.map((error) => inCondition(locate(text, error)));
  if (parts.policies.length !== 1 || parts.policy_templates.length !== 0)
    return [{ message: 'must be one Cedar condition (the body of a when clause), not policies' }];
  return [];
}

/**
 * The checks of an approval condition that need no Cedar (its length and bounds): they run where
 * the request body is parsed, in the broker; the rest runs in a Cedar process.
 */
export function approvalConditionBounds(when: string): PolicyProblem[] {
  if (when.length > MAX_CONDITION) return [{ message: `must be at most ${MAX_CONDITION} characters` }];
  const bounds = cedarBoundsProblem(conditionPolicy(when));
  return bounds ? [inCondition(bounds)] : [];
}

/** A problem located in the wrapping policy, located in the condition as written. */
function inCondition(problem: PolicyProblem): PolicyProblem {
  return problem.line === 1 && problem.column !== undefined
    ? { ...problem, column: Math.max(1, problem.column - CONDITION_PREFIX.length) }
    : problem;
}

function locate(text: string, error: DetailedError): PolicyProblem {
  const plain = error.message.replace(/^failed to parse policies from string: /, '');
  const message = error.help ? `${plain} (${error.help})` : plain;
  const offset = error.sourceLocations?.[0]?.start;
  if (offset === undefined) return { message };
  const before = text.slice(0, offset).split('\n');
  return { message, line: before.length, column: before[before.length - 1]!.length + 1 };
}

/** A policy set parsed once into Cedar's thread-local cache, with where each policy came from. */
export interface CompiledPolicySet {
  key: string;
  slot: string;
  /**
   * The id of this set's sentinel policy, unique to the evaluator and the preparation: it fails on
   * every request, so Cedar names it in every answer. An answer without it came from another set.
   */
  sentinel: string;
  policies: Record<string, string>;
  /** Cedar policy id → the source it came from, whether it forbids and whether it asks for approval. */
  origins: Map<string, Origin>;
  /**
   * Cedar's default deny applies: the set holds a boundary's own policy, or a permit. A set of
   * global forbids only is a guardrail: when none of them matches, the core checks' permit stands.
   */
  defaultDeny: boolean;
}

interface Origin {
  ref: PolicyRef;
  forbid: boolean;
  approval: boolean;
}

/**
 * Parses policy sources once per version and decides requests against them. Compiled sets live in
 * Cedar's thread-local cache under a bounded number of slots, keyed by the caller (the boundary
 * version plus the global policy versions), so a new version is parsed once and an old one ages out.
 * That cache is one namespace for the whole process (or thread): the slots carry a prefix random to
 * this evaluator, so two evaluators (the hot path and a what-if) never prepare into each other's.
 */
export class CedarEvaluator {
  private readonly compiled = new Map<string, CompiledPolicySet>();
  private readonly freeSlots: string[] = [];
  private nextSlot = 0;
  private readonly prefix = `tollgate-${randomBytes(6).toString('hex')}`;
  private preparations = 0;

  constructor(private readonly maxSets = 1000) {}

  /** The compiled set for `key` if this evaluator still holds it. */
  known(key: string): CompiledPolicySet | undefined {
    const known = this.compiled.get(key);
    if (known) {
      this.compiled.delete(key);
      this.compiled.set(key, known);
    }
    return known;
  }

  /**
   * The compiled set for `key`, parsing `sources` when it is new. Only the policies that can apply
   * to `tool` are kept: a policy whose resource is `Tool::"<another tool>"` never matches it.
   */
  compile(key: string, sources: readonly PolicySource[], tool?: string): CompiledPolicySet {
    const known = this.compiled.get(key);
    if (known) {
      // Refresh its place: the least recently used set is the one evicted.
      this.compiled.delete(key);
      this.compiled.set(key, known);
      return known;
    }
    const policies: Record<string, string> = {};
    const origins = new Map<string, Origin>();
    sources.forEach((source, s) => {
      const parts = policySetTextToParts(source.text);
      if (parts.type === 'failure') throw new Error(`policy ${source.id} v${source.version} does not parse`);
      parts.policies.forEach((text, p) => {
        const json = policyToJson(text);
        if (json.type === 'failure') throw new Error(`policy ${source.id} v${source.version} does not parse`);
        const resource = json.json.resource;
        if (tool !== undefined && resource.op === '==' && 'entity' in resource) {
          const entity = 'type' in resource.entity ? resource.entity : resource.entity.__entity;
          if (entity.type === 'Tool' && entity.id !== tool) return;
        }
        const id = `s${s}p${p}`;
        policies[id] = text;
        origins.set(id, {
          ref: { id: source.id, version: source.version },
          forbid: json.json.effect === 'forbid',
          approval: json.json.annotations?.[APPROVAL_ANNOTATION] === 'required',
        });
      });
    });
    if (this.compiled.size >= this.maxSets) {
      const [oldest, evicted] = this.compiled.entries().next().value!;
      this.compiled.delete(oldest);
      this.freeSlots.push(evicted.slot);
    }
    const slot = this.freeSlots.pop() ?? `${this.prefix}-${this.nextSlot++}`;
    const defaultDeny = sources.some((source) => source.scope === 'boundary') || [...origins.values()].some((origin) => !origin.forbid);
    const set: CompiledPolicySet = { key, slot, sentinel: '', policies, origins, defaultDeny };
    this.prepare(set);
    this.compiled.set(key, set);
    return set;
  }

  /**
   * Forbid wins; under default deny (a boundary's own policy, or any permit) no satisfied permit
   * is a deny (`policy_no_permit`); a guardrail of global forbids only denies only by a forbid.
   */
  evaluate(set: CompiledPolicySet, request: CedarRequest): PolicyDecision {
    if (set.origins.size === 0) {
      // Every policy was scoped to other tools.
      return set.defaultDeny ? deny('policy_no_permit', [], []) : allow([]);
    }
    // A set evicted since it was compiled (a long what-if) is parsed into its slot again.
    if (this.compiled.get(set.key) !== set) this.prepare(set);
    let answer = statefulIsAuthorized({ ...request, preparsedPolicySetId: set.slot, validateRequest: false });
    if (answer.type === 'success' && !answeredBy(set, answer.response.diagnostics.errors)) {
      // The slot no longer holds this set (something else prepared into it): never decide on a
      // set that is not this one; parse it back in and ask again.
      this.prepare(set);
      answer = statefulIsAuthorized({ ...request, preparsedPolicySetId: set.slot, validateRequest: false });
      if (answer.type === 'success' && !answeredBy(set, answer.response.diagnostics.errors))
        return deny('policy_forbid', [], ['the policy set could not be loaded']);
    }
    if (answer.type === 'failure')
      return deny(
        'policy_forbid',
        [],
        answer.errors.map((error) => error.message),
      );
    // Plain loops, not map/filter callbacks: replaying many rows in a row tripped a V8 deoptimizer
    // crash ("unreachable code") in Node 20 with the callback forms. Its cause is TurboFan's inlined
    // JS→WASM calls (Deoptimizer::DoComputeBuiltinContinuation); Cedar processes run without them
    // (cedar-process.ts), and a crash there ends only that process.
    const { decision, diagnostics } = answer.response;
    const errors: string[] = [];
    const failedForbids: PolicyRef[] = [];
    for (const { policyId, error } of diagnostics.errors) {
      if (policyId === set.sentinel) continue;
      errors.push(`${describe(set, policyId)}: ${error.message}`);
      const origin = set.origins.get(policyId);
      if (origin?.forbid) failedForbids.push(origin.ref);
    }
    const satisfied: PolicyRef[] = [];
    let forbidden = false;
    let approval = false;
    for (const id of diagnostics.reason) {
      const origin = set.origins.get(id);
      if (!origin) continue;
      satisfied.push(origin.ref);
      if (origin.forbid) forbidden = true;
      if (origin.approval) approval = true;
    }
    const determining = refs(satisfied);
    if (decision === 'allow' && failedForbids.length === 0)
      return { decision: 'allow', reasons: [], determiningPolicies: determining, errors, approvalRequired: approval };
    // A forbid that could not be evaluated is not known to be unsatisfied: fail closed.
    if (decision === 'allow') return deny('policy_forbid', refs(failedForbids), errors);
    if (forbidden) return deny('policy_forbid', determining, errors);
    if (failedForbids.length > 0) return deny('policy_forbid', refs(failedForbids), errors);
    // A guardrail (such as "no high-sensitivity tool for this workload") none of whose forbids
    // matched: the core checks' permit stands. Otherwise Cedar's default deny holds.
    if (!set.defaultDeny) return allow(errors);
    return deny('policy_no_permit', [], errors);
  }

  /** Parses the set into its slot under a sentinel id never used before. */
  private prepare(set: CompiledPolicySet): void {
    set.sentinel = `${this.prefix}-sentinel-${this.preparations++}`;
    const answer = preparsePolicySet(set.slot, { staticPolicies: { ...set.policies, [set.sentinel]: SENTINEL_POLICY } });
    if (answer.type === 'failure') throw new Error(`policy set ${set.key} does not parse: ${answer.errors[0]?.message ?? 'unknown'}`);
  }

  /**
   * Whether a boundary's approval condition holds for the request, compiled once per `key` (the
   * boundary version) into the same cache as policies. Fails closed: a condition that does not
   * compile, or errors on this request (a missing attribute, a type error), requires approval.
   */
  conditionHolds(key: string, when: string, request: CedarRequest): boolean {
    let set: CompiledPolicySet;
    try {
      set = this.compile(key, [{ id: key, version: 0, text: conditionPolicy(when), scope: 'boundary' }]);
    } catch {
      return true;
    }
    const answer = this.evaluate(set, request);
    return answer.decision === 'allow' || answer.errors.length > 0;
  }
}

function allow(errors: string[]): PolicyDecision {
  return { decision: 'allow', reasons: [], determiningPolicies: [], errors, approvalRequired: false };
}

function deny(reason: PolicyDenyReason, determiningPolicies: PolicyRef[], errors: string[]): PolicyDecision {
  return { decision: 'deny', reasons: [reason], determiningPolicies, errors, approvalRequired: false };
}

/**
 * The sentinel: a permit whose condition reads a context attribute no request has, so it errors
 * (and is skipped) on every request. It can never permit or forbid; it only signs the answer.
 */
const SENTINEL_POLICY = 'permit(principal, action, resource) when { context.tollgate_sentinel };';

function answeredBy(set: CompiledPolicySet, errors: readonly { policyId: string }[]): boolean {
  for (const { policyId } of errors) if (policyId === set.sentinel) return true;
  return false;
}

function describe(set: CompiledPolicySet, policyId: string): string {
  const origin = set.origins.get(policyId);
  return origin ? `${origin.ref.id} v${origin.ref.version}` : policyId;
}

/** Distinct refs, in order. */
function refs(list: readonly PolicyRef[]): PolicyRef[] {
  const distinct: PolicyRef[] = [];
  for (const ref of list) if (!distinct.some((seen) => seen.id === ref.id && seen.version === ref.version)) distinct.push(ref);
  return distinct;
}
