import type { ToolBoundary } from './boundary.js';
import { paramsMismatch } from './params-schema.js';

/** Machine-readable reasons a credential request is refused, in the order they are checked. */
export type DenyReason =
  | 'task_not_active'
  | 'unknown_boundary'
  | 'audience_mismatch'
  | 'boundary_disabled'
  | 'intent_mismatch'
  | 'action_not_allowed'
  | 'invalid_params';

export type Verdict = { outcome: 'permit' } | { outcome: 'deny'; reasons: [DenyReason]; description: string };

export interface CheckInput {
  task: { active: boolean; intent: string };
  boundary: ToolBoundary | undefined;
  action: string;
  /** The tool the caller named (the token endpoint's `audience`), when it named one. */
  audience?: string | undefined;
  /** True when the request's params hold what the database cannot keep (see findUnstorable). */
  paramsUnstorable?: boolean;
  /** The request's params, checked against the action's declared schema (ToolBoundary.paramsSchemas). */
  params?: Record<string, unknown> | undefined;
}

/**
 * The coarse gate of every credential request. Checks run in a fixed order and the first failure
 * decides: a later check means nothing once an earlier one failed (an unknown boundary has no
 * actions to compare). The workload was authenticated and the task's ownership settled before this.
 */
export function checkCredentialRequest({ task, boundary, action, audience, paramsUnstorable, params }: CheckInput): Verdict {
  if (!task.active) return deny('task_not_active', 'the task is not active');
  if (!boundary) return deny('unknown_boundary', 'no such tool boundary');
  if (audience !== undefined && audience !== boundary.tool)
    return deny('audience_mismatch', 'the audience is not the tool of the boundary');
  if (!boundary.enabled) return deny('boundary_disabled', 'the tool boundary is disabled');
  if (!boundary.intents.includes(task.intent)) {
    return deny('intent_mismatch', `the tool boundary does not serve the task's intent`);
  }
  if (!boundary.actions.includes(action)) return deny('action_not_allowed', 'the action is not allowed by the tool boundary');
  // Params the database cannot keep (NUL, lone surrogates) or nested too deep for Cedar are refused,
  // never answered with an error: the refusal is recorded (in storable form) and counts as drift, so
  // a bot cannot hide a probe behind a NUL byte.
  if (paramsUnstorable) return deny('invalid_params', 'the params hold a NUL, broken unicode or nesting deeper than 32 levels');
  // The tool's declared arguments: the refusal names the argument and the rule, never the value.
  const mismatch = paramsMismatch(boundary, action, params);
  if (mismatch !== undefined) return deny('invalid_params', `the params do not match the schema of the action: ${mismatch}`);
  return { outcome: 'permit' };
}

function deny(reason: DenyReason, description: string): Verdict {
  return { outcome: 'deny', reasons: [reason], description };
}
