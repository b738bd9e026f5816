import { canonicalJson } from '../audit/index.js';

/** A JSON Schema (what ajv 8 compiles in strict mode) for one action's arguments (libs/policy/params-schema.ts). */
export type ParamsSchema = Record<string, unknown>;

/** Per action: the JSON Schema of the tool's arguments. Actions without one take any params. */
export type ParamsSchemas = Record<string, ParamsSchema>;

/** An admin-approved tool boundary, at one version. */
export interface ToolBoundary {
  id: string;
  version: number;
  /** The tool's audience: the `aud` of credentials issued under this boundary. */
  tool: string;
  actions: string[];
  /** Task intents this boundary serves. */
  intents: string[];
  defaultTtl: number;
  maxTtl: number;
  credential: CredentialSettings;
  sensitivity: Sensitivity;
  /** Denials a task may collect before the drift guard suspends it, when this boundary denies; null: the global setting. */
  driftThreshold: number | null;
  enabled: boolean;
  /** Human approval (step-up): requests the condition holds for wait for a reviewer. Null: none. */
  approval: ApprovalRule | null;
  /** The boundary's own Cedar policy set, versioned with it; null when it has none. */
  policy: string | null;
  /**
   * Per action, the JSON Schema of the tool's arguments: params that do not match are refused
   * (`invalid_params`), and the boundary's Cedar `params` type for that action is generated from it.
   * Null when no action declares one.
   */
  paramsSchemas: ParamsSchemas | null;
  createdAt: Date;
}

/** `when` is a Cedar condition over the same request as policies (libs/policy/cedar.ts); `ttl` in seconds. */
export interface ApprovalRule {
  when: string;
  ttl: number;
}

/** How long an approval stays usable when the rule names no ttl: 10 minutes. */
export const DEFAULT_APPROVAL_TTL_S = 600;

export type Sensitivity = 'low' | 'medium' | 'high';

/**
 * A boundary's `credential`: `kind` names the credential kind, the rest is that kind's. Policy keeps
 * it opaque (credentials sit above policy); it is checked against its kind's schema
 * (libs/credentials/catalog.ts) where a boundary is written.
 */
export interface CredentialSettings {
  kind: string;
  [setting: string]: unknown;
}

/** What an admin writes; the version and timestamps are the store's. */
export type BoundaryDefinition = Omit<ToolBoundary, 'id' | 'version' | 'createdAt'>;

/** True when two definitions would issue the same credentials, so a PUT needs no new version. */
export function sameDefinition(a: BoundaryDefinition, b: BoundaryDefinition): boolean {
  return (
    a.tool === b.tool &&
    sameList(a.actions, b.actions) &&
    sameList(a.intents, b.intents) &&
    a.defaultTtl === b.defaultTtl &&
    a.maxTtl === b.maxTtl &&
    JSON.stringify(a.credential) === JSON.stringify(b.credential) &&
    a.sensitivity === b.sensitivity &&
    a.driftThreshold === b.driftThreshold &&
    a.enabled === b.enabled &&
    JSON.stringify(a.approval ?? null) === JSON.stringify(b.approval ?? null) &&
    a.policy === b.policy &&
    canonicalJson(a.paramsSchemas ?? null) === canonicalJson(b.paramsSchemas ?? null)
  );
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((value, i) => value === b[i]);
}
