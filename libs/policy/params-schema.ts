import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { RE2JS } from 're2js';
import { canonicalJson } from '../audit/index.js';
import type { ParamsSchema, ToolBoundary } from './boundary.js';

/** Admin input is hostile: a schema is bounded before ajv compiles it (code generation costs). */
export const MAX_PARAMS_SCHEMA_BYTES = 16_384;
export const MAX_PARAMS_SCHEMA_DEPTH = 16;
/** `pattern` runs against every request's params: bounded, like everything an admin writes. */
const MAX_PATTERN_LENGTH = 256;

/**
 * Patterns (`pattern`, `patternProperties`) run against every request's params, which a bot
 * controls. They run on RE2 (re2js: linear time in the input), never on JavaScript's backtracking
 * engine, so no pattern an admin writes (`(a+)+$`) can stall the broker. RE2 has no backreferences
 * or lookaround: a pattern that needs them is refused when the boundary is written. Like RegExp's
 * `test`, RE2's finds a match anywhere in the input (JSON Schema patterns are not anchored).
 */
const linearRegExp = Object.assign((pattern: string) => RE2JS.compile(pattern), { code: 'RE2JS.compile' });

function newAjv(): Ajv {
  // Strict: unknown keywords and ambiguous schemas are errors, not silently ignored constraints.
  // No remote $ref is ever loaded (no loadSchema), so a $ref must resolve inside the schema.
  return new Ajv({ strict: true, allErrors: false, validateFormats: false, code: { regExp: linearRegExp } });
}

/**
 * Why this schema cannot be a params schema, or undefined when it can: too big, too deep, a
 * pattern too long, not an object schema, or ajv's own complaint (strict mode) when compiling it.
 */
export function paramsSchemaProblem(schema: unknown): string | undefined {
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) return 'must be a JSON Schema object';
  let text: string;
  try {
    text = canonicalJson(schema);
  } catch {
    return 'must be JSON';
  }
  if (Buffer.byteLength(text, 'utf8') > MAX_PARAMS_SCHEMA_BYTES) return `must be at most ${MAX_PARAMS_SCHEMA_BYTES} bytes`;
  const shape = walk(schema, 0);
  if (shape) return shape;
  if ((schema as ParamsSchema).type !== 'object') return 'must have "type": "object" (a tool takes named arguments)';
  try {
    newAjv().compile(schema as ParamsSchema);
  } catch (error) {
    return `is not a valid JSON Schema: ${error instanceof Error ? error.message : String(error)}`;
  }
  return undefined;
}

function walk(value: unknown, depth: number): string | undefined {
  if (depth > MAX_PARAMS_SCHEMA_DEPTH) return `must nest at most ${MAX_PARAMS_SCHEMA_DEPTH} levels`;
  if (Array.isArray(value)) {
    for (const item of value) {
      const problem = walk(item, depth + 1);
      if (problem) return problem;
    }
  } else if (typeof value === 'object' && value !== null) {
    for (const [key, member] of Object.entries(value)) {
      if (key === 'pattern' && typeof member === 'string' && member.length > MAX_PATTERN_LENGTH) {
        return `a pattern must be at most ${MAX_PATTERN_LENGTH} characters`;
      }
      const problem = walk(member, depth + 1);
      if (problem) return problem;
    }
  }
  return undefined;
}

/** The compiled schemas of recent boundary versions; a version never changes, so neither does its entry. */
const compiled = new Map<string, Map<string, ValidateFunction>>();
const MAX_COMPILED_VERSIONS = 256;

function validatorFor(boundary: ToolBoundary, action: string): ValidateFunction | undefined {
  const schema = boundary.paramsSchemas?.[action];
  if (!schema) return undefined;
  // A version never changes; its creation time tells apart a boundary recreated in another database.
  const key = `${boundary.id}\u0000${boundary.version}\u0000${boundary.createdAt.getTime()}`;
  let byAction = compiled.get(key);
  if (!byAction) {
    // Oldest first out: a Map iterates in insertion order.
    if (compiled.size >= MAX_COMPILED_VERSIONS) compiled.delete(compiled.keys().next().value!);
    byAction = new Map();
    compiled.set(key, byAction);
  }
  let validate = byAction.get(action);
  if (!validate) {
    // One Ajv per schema: two boundaries may use the same $id.
    validate = newAjv().compile(schema);
    byAction.set(action, validate);
  }
  return validate;
}

/**
 * Why these params do not match the action's declared schema, or undefined when they do (or no
 * schema is declared). Names the argument and the rule it broke, never the value sent: the answer
 * goes back to the bot and into logs. Absent params are checked as no arguments (`{}`).
 */
export function paramsMismatch(boundary: ToolBoundary, action: string, params: Record<string, unknown> | undefined): string | undefined {
  const validate = validatorFor(boundary, action);
  if (!validate || validate(params ?? {})) return undefined;
  return describe(validate.errors?.[0]);
}

function describe(error: ErrorObject | undefined): string {
  if (!error) return 'the params do not match the schema of the action';
  let where = error.instancePath === '' ? 'params' : `params${error.instancePath}`;
  // Missing and unexpected arguments are named by the schema (or the key), not the path.
  if (error.keyword === 'required') where = `${where}/${String((error.params as { missingProperty: string }).missingProperty)}`;
  if (error.keyword === 'additionalProperties') {
    where = `${where}/${String((error.params as { additionalProperty: string }).additionalProperty)}`;
    return `${where}: is not an argument of the action`.slice(0, 512);
  }
  return `${where}: ${error.keyword === 'required' ? 'is required' : (error.message ?? `fails ${error.keyword}`)}`.slice(0, 512);
}
