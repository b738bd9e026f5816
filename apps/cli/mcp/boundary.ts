import type { Body, PutSchemas } from '../apply/manifest.js';
import type { Change, FieldChange } from '../apply/plan.js';
import { findProblem, isMap } from '../apply/schema.js';
import { UsageError } from '../errors.js';
import type { McpTool } from './tools.js';

/**
 * The boundary field holding each action's params schema (JSON Schema of the tool's arguments).
 * A broker whose boundary PUT schema has no such field gets the schemas in the plan only.
 */
export const PARAMS_SCHEMAS = 'params_schemas';

/** A new boundary's TTLs when none are given: short, as a tool call is. */
const DEFAULT_TTL = 60;
const MAX_TTL = 300;

/** What `tollgate mcp import` was asked to write. */
export interface McpImport {
  boundaryId: string;
  /** The MCP server's URL: the boundary's tool, the credential's aud, the `resource` a client asks for. */
  serverUrl: string;
  tools: readonly McpTool[];
  /** Required for a new boundary; left out, an existing boundary keeps its own. */
  intents?: readonly string[] | undefined;
  defaultTtl?: number | undefined;
  maxTtl?: number | undefined;
}

/** One action of the plan: added, changed (its params schema), removed, or the same. */
export interface ActionChange {
  action: '+' | '~' | '-' | '=';
  name: string;
  paramsSchema?: Record<string, unknown> | undefined;
}

export interface ImportPlan {
  /** The PUT to make; undefined when the broker holds the boundary as imported already. */
  change: Change | undefined;
  actions: ActionChange[];
  /** Whether the broker's boundaries take params schemas (else they are in the plan only). */
  schemasApplied: boolean;
}

/**
 * The boundary an MCP server's tools make, against what the broker holds under the id. Only the
 * fields the import owns are compared and changed (tool, actions, their params schemas, and intents
 * and TTLs when given); everything else an admin set on the boundary (sensitivity, approval,
 * policy, credential) stays as stored.
 */
export function planImport(request: McpImport, current: Body | undefined, schemas: PutSchemas): ImportPlan {
  const schema = schemas.byKind.boundary;
  const schemasApplied = Object.hasOwn(schema.properties ?? {}, PARAMS_SCHEMAS);
  const owned = ownedFields(request, schemasApplied);
  const actions = actionChanges(request.tools, current);
  let change: Change | undefined;
  if (!current) {
    if (!request.intents?.length) throw new UsageError(`mcp import: boundary ${request.boundaryId} is new: give its intents with --intent`);
    const defaultTtl = request.defaultTtl ?? DEFAULT_TTL;
    const body: Body = {
      ...owned,
      default_ttl: defaultTtl,
      max_ttl: request.maxTtl ?? Math.max(MAX_TTL, defaultTtl),
      credential: { kind: 'jwt' },
    };
    change = { action: 'create', kind: 'boundary', id: request.boundaryId, body };
  } else {
    const fields: FieldChange[] = [];
    for (const [field, wanted] of Object.entries(owned)) {
      const stored = current[field] ?? null;
      if (!sameJson(wanted, stored)) fields.push({ field, from: stored, to: wanted });
    }
    if (fields.length > 0) {
      const body = { ...storedPutFields(current, Object.keys(schema.properties ?? {})), ...owned };
      change = { action: 'change', kind: 'boundary', id: request.boundaryId, body, fields };
    }
  }
  if (change?.body) {
    // The broker's own rules, before anything is sent: a tool name that cannot be an action, say.
    const problem = findProblem(change.body, schema, schemas.resolve, [], 'a boundary');
    if (problem) {
      const [field, index] = problem.path;
      const tool = field === 'actions' && index !== undefined ? ` (tool "${request.tools[Number(index)]?.name}")` : '';
      throw new UsageError(`mcp import: boundary ${request.boundaryId}: ${problem.path.join('.')}${tool}: ${problem.message}`, false);
    }
  }
  return { change, actions, schemasApplied };
}

function ownedFields(request: McpImport, schemasApplied: boolean): Body {
  const fields: Body = { tool: request.serverUrl, actions: request.tools.map((tool) => tool.name) };
  if (schemasApplied) fields[PARAMS_SCHEMAS] = Object.fromEntries(request.tools.map((tool) => [tool.name, tool.inputSchema]));
  if (request.intents?.length) fields.intents = [...request.intents];
  if (request.defaultTtl !== undefined) fields.default_ttl = request.defaultTtl;
  if (request.maxTtl !== undefined) fields.max_ttl = request.maxTtl;
  return fields;
}

/** The stored boundary as a PUT body: the fields a PUT takes, absent ones (null) left to their defaults. */
function storedPutFields(current: Body, fields: readonly string[]): Body {
  const body: Body = {};
  for (const field of fields) if (current[field] !== null && current[field] !== undefined) body[field] = current[field];
  return body;
}

function actionChanges(tools: readonly McpTool[], current: Body | undefined): ActionChange[] {
  const storedActions = new Set(Array.isArray(current?.actions) ? current.actions.map(String) : []);
  const storedSchemas = isMap(current?.[PARAMS_SCHEMAS]) ? current[PARAMS_SCHEMAS] : undefined;
  const changes: ActionChange[] = tools.map((tool) => {
    if (!storedActions.has(tool.name)) return { action: '+', name: tool.name, paramsSchema: tool.inputSchema };
    const changed = storedSchemas !== undefined && !sameJson(tool.inputSchema, storedSchemas[tool.name] ?? null);
    return { action: changed ? '~' : '=', name: tool.name, paramsSchema: tool.inputSchema };
  });
  const offered = new Set(tools.map((tool) => tool.name));
  for (const name of storedActions) if (!offered.has(name)) changes.push({ action: '-', name });
  return changes;
}

/** Equal as JSON values, member order aside. */
export function sameJson(a: unknown, b: unknown): boolean {
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((item, i) => sameJson(item, b[i]));
  if (isMap(a)) {
    if (!isMap(b)) return false;
    const keys = Object.keys(a).filter((key) => a[key] !== undefined);
    return keys.length === Object.keys(b).filter((key) => b[key] !== undefined).length && keys.every((key) => sameJson(a[key], b[key]));
  }
  return a === b;
}
