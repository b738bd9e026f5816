import {
  checkParsePolicySet,
  policySetTextToParts,
  preparsePolicySet,
  statefulIsAuthorized,
  type CedarValueJson,
  type Context,
  type DetailedError,
} from '@cedar-policy/cedar-wasm/nodejs';
import type { ToolBoundary } from './boundary.js';

/**
 * The approval rule's Cedar condition: all of this feature's Cedar in one file, behind two
 * functions, so it can be merged with the policy evaluator. The condition is wrapped as the one
 * policy `permit(principal, action, resource) when { <condition> };`: "allow" means the request
 * needs a human's approval. It is parsed once per boundary version (preparsePolicySet) and
 * evaluated per request (statefulIsAuthorized).
 */

/**
 * What the condition sees: principal `Workload::"<id>"`, action `Action::"<action>"`, resource
 * `Tool::"<tool>"` (attributes `boundary`, `sensitivity`), and the context record.
 */
export interface RequestModel {
  workloadId: string;
  action: string;
  tool: string;
  context: {
    intent: string;
    subject: string;
    boundary: string;
    resource?: string | undefined;
    params: Record<string, unknown>;
    purpose?: string | undefined;
    sensitivity: string;
    task_age_s: number;
    denials_in_task: number;
    /** Seconds since the epoch, by the database clock. */
    now: number;
  };
}

export interface RequestModelInput {
  workloadId: string;
  task: { intent: string; subject: string; createdAt: number };
  boundary: Pick<ToolBoundary, 'id' | 'tool' | 'sensitivity'>;
  action: string;
  resource: string | null;
  params: Record<string, unknown> | null;
  purpose: string | null;
  denialsInTask: number;
  /** Database clock, milliseconds. */
  now: number;
}

/** Builds the request model. Swappable for the policy evaluator's own builder: same shape. */
export function requestModel(input: RequestModelInput): RequestModel {
  return {
    workloadId: input.workloadId,
    action: input.action,
    tool: input.boundary.tool,
    context: {
      intent: input.task.intent,
      subject: input.task.subject,
      boundary: input.boundary.id,
      resource: input.resource ?? undefined,
      params: input.params ?? {},
      purpose: input.purpose ?? undefined,
      sensitivity: input.boundary.sensitivity,
      task_age_s: Math.max(0, Math.floor((input.now - input.task.createdAt) / 1000)),
      denials_in_task: input.denialsInTask,
      now: Math.floor(input.now / 1000),
    },
  };
}

const PREFIX = 'permit(principal, action, resource) when { ';
const SUFFIX = ' };';
const MAX_CONDITION = 4096;

/**
 * Why a condition cannot be used, in Cedar's own words (with the column in the condition), or
 * undefined when it can. Exactly one policy must come out of the wrapper: a condition that closes
 * the brace and opens another policy is refused.
 */
export function approvalConditionError(when: string): string | undefined {
  if (when.length > MAX_CONDITION) return `must be at most ${MAX_CONDITION} characters`;
  const text = wrap(when);
  const parsed = checkParsePolicySet({ staticPolicies: text });
  if (parsed.type === 'failure') return describe(parsed.errors);
  const parts = policySetTextToParts(text);
  if (parts.type === 'failure') return describe(parts.errors);
  if (parts.policies.length !== 1 || parts.policy_templates.length !== 0) return 'must be one Cedar condition (the body of a when clause), not policies';
  return undefined;
}

/** Policy set ids already preparsed in this process: one per boundary version (a version never changes). */
const preparsed = new Set<string>();

/**
 * True when the boundary's approval rule holds for the request. Fails closed: a condition that
 * does not parse, or that errors on this request (a missing attribute, a type error), requires
 * approval rather than letting the request through unreviewed.
 */
export function requiresApproval(boundary: Pick<ToolBoundary, 'id' | 'version' | 'approval' | 'sensitivity'>, model: RequestModel): boolean {
  if (!boundary.approval) return false;
  const id = `approval:${boundary.id}:${boundary.version}`;
  if (!preparsed.has(id)) {
    if (preparsePolicySet(id, { staticPolicies: wrap(boundary.approval.when) }).type === 'failure') return true;
    preparsed.add(id);
  }
  const answer = statefulIsAuthorized({
    principal: { type: 'Workload', id: model.workloadId },
    action: { type: 'Action', id: model.action },
    resource: { type: 'Tool', id: model.tool },
    context: cedarContext(model.context),
    preparsedPolicySetId: id,
    entities: [
      { uid: { type: 'Tool', id: model.tool }, attrs: { boundary: model.context.boundary, sensitivity: model.context.sensitivity }, parents: [] },
    ],
  });
  if (answer.type === 'failure') return true;
  return answer.response.decision === 'allow' || answer.response.diagnostics.errors.length > 0;
}

function wrap(when: string): string {
  return `${PREFIX}${when}${SUFFIX}`;
}

function describe(errors: readonly DetailedError[]): string {
  const first = errors[0];
  if (!first) return 'is not a valid Cedar condition';
  const where = first.sourceLocations?.[0];
  const column = where ? ` at column ${Math.max(1, where.start - PREFIX.length + 1)}` : '';
  const label = where?.label ? ` (${where.label})` : '';
  return `${first.message.replace(/^failed to parse policies from string: /, '')}${column}${label}`;
}

function cedarContext(context: RequestModel['context']): Context {
  return toCedar(context) as Context;
}

/**
 * JSON as Cedar values. Cedar has no null and no fractions: nulls are left out (a condition can
 * test with `has`), a fraction becomes a decimal when it has at most four places (else a string).
 * Keys starting `__` are dropped so params cannot smuggle in entity or extension escapes.
 */
function toCedar(value: unknown): CedarValueJson | undefined {
  if (value === null || value === undefined) return undefined;
  if (typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') {
    if (Number.isSafeInteger(value)) return value;
    if (Number.isFinite(value) && Number(value.toFixed(4)) === value) return { __extn: { fn: 'decimal', arg: value.toFixed(4) } };
    return String(value);
  }
  if (Array.isArray(value)) return value.map(toCedar).filter((item): item is CedarValueJson => item !== undefined);
  if (typeof value === 'object') {
    const record: Record<string, CedarValueJson> = {};
    for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
      if (key.startsWith('__')) continue;
      const converted = toCedar(item);
      if (converted !== undefined) record[key] = converted;
    }
    return record;
  }
  return undefined;
}
