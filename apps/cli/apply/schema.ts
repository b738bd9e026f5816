/**
 * The JSON Schemas (2020-12, OpenAPI 3.1's dialect) of the broker's /openapi.json, as far as the
 * CLI reads them: enough to check a body before anything is sent, naming the first bad field, and to
 * fill the defaults the broker would fill. The schemas are the broker's own (generated from the very
 * zod schemas its handlers parse with), so the CLI never restates them; keywords outside the subset
 * below are left to the broker, which checks every body again anyway.
 */
export interface JsonSchema {
  type?: string | string[];
  enum?: unknown[];
  const?: unknown;
  default?: unknown;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  propertyNames?: JsonSchema;
  items?: JsonSchema;
  minItems?: number;
  maxItems?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  allOf?: JsonSchema[];
  $ref?: string;
}

/** The first thing wrong with a value: where (member names and list indexes) and what. */
export interface SchemaProblem {
  path: string[];
  message: string;
}

/** Resolves `#/components/schemas/X` references against the document the schemas came from. */
export type Resolve = (ref: string) => JsonSchema;

export function resolverFor(document: unknown): Resolve {
  return (ref) => {
    if (!ref.startsWith('#/')) throw new Error(`cannot follow $ref ${ref}: only references inside /openapi.json are read`);
    let node: unknown = document;
    for (const part of ref.slice(2).split('/')) {
      const name = part.replace(/~1/g, '/').replace(/~0/g, '~');
      node = isMap(node) ? node[name] : undefined;
    }
    if (!isMap(node)) throw new Error(`$ref ${ref} names nothing in /openapi.json`);
    return node as JsonSchema;
  };
}

/**
 * The first problem of `value` under `schema`, or undefined. Members of a map are checked in the
 * order the value gives them, then the required ones that are missing: the same order a reader of
 * the file would find them in. `name` is what an unknown top-level member's message calls the value.
 */
export function findProblem(
  value: unknown,
  schema: JsonSchema,
  resolve: Resolve,
  path: string[] = [],
  name = 'it',
): SchemaProblem | undefined {
  const at = (message: string, where = path): SchemaProblem => ({ path: where, message });
  if (schema.$ref !== undefined) return findProblem(value, resolve(schema.$ref), resolve, path);
  for (const part of schema.allOf ?? []) {
    const problem = findProblem(value, part, resolve, path);
    if (problem) return problem;
  }
  const alternatives = schema.anyOf ?? schema.oneOf;
  if (alternatives) {
    const problem = alternativeProblem(value, alternatives, schema.oneOf !== undefined, resolve, path);
    if (problem) return problem;
  }

  if (!hasType(value, schema.type)) return at(`must be ${describe(schema, resolve)}`);
  if (schema.const !== undefined && !same(value, schema.const)) return at(`must be ${JSON.stringify(schema.const)}`);
  if (schema.enum && !schema.enum.some((option) => same(value, option))) return at(`must be ${describe(schema, resolve)}`);

  if (typeof value === 'string') {
    // zod, which the broker checks with, counts UTF-16 code units: so does String.length.
    if (schema.minLength !== undefined && value.length < schema.minLength) {
      return at(schema.minLength === 1 ? 'must not be empty' : `must be at least ${schema.minLength} characters long`);
    }
    if (schema.maxLength !== undefined && value.length > schema.maxLength) return at(`must be at most ${schema.maxLength} characters long`);
    if (schema.pattern !== undefined && !new RegExp(schema.pattern).test(value)) return at(`must match ${schema.pattern}`);
  }
  if (typeof value === 'number') {
    if (schema.minimum !== undefined && value < schema.minimum) return at(`must be at least ${schema.minimum}`);
    if (schema.maximum !== undefined && value > schema.maximum) return at(`must be at most ${schema.maximum}`);
    if (schema.exclusiveMinimum !== undefined && value <= schema.exclusiveMinimum)
      return at(`must be more than ${schema.exclusiveMinimum}`);
    if (schema.exclusiveMaximum !== undefined && value >= schema.exclusiveMaximum)
      return at(`must be less than ${schema.exclusiveMaximum}`);
  }
  if (Array.isArray(value)) {
    if (schema.minItems !== undefined && value.length < schema.minItems) return at(`must list at least ${schema.minItems} item(s)`);
    if (schema.maxItems !== undefined && value.length > schema.maxItems) return at(`must list at most ${schema.maxItems} item(s)`);
    if (schema.items) {
      for (const [index, item] of value.entries()) {
        const problem = findProblem(item, schema.items, resolve, [...path, String(index)]);
        if (problem) return problem;
      }
    }
  }
  if (isMap(value)) {
    const properties = schema.properties ?? {};
    for (const [field, member] of Object.entries(value)) {
      const where = [...path, field];
      if (schema.propertyNames) {
        const problem = findProblem(field, schema.propertyNames, resolve, where);
        if (problem) return at(`the name ${problem.message}`, where);
      }
      const memberSchema = properties[field] ?? (typeof schema.additionalProperties === 'object' ? schema.additionalProperties : undefined);
      if (memberSchema) {
        const problem = findProblem(member, memberSchema, resolve, where);
        if (problem) return problem;
      } else if (schema.additionalProperties === false) {
        return at(`unknown field (${path.length === 0 ? name : 'it'} takes ${Object.keys(properties).join(', ')})`, where);
      }
    }
    for (const name of schema.required ?? []) {
      if (!(name in value)) return at('is required', [...path, name]);
    }
  }
  return undefined;
}

/**
 * anyOf / oneOf: the value passes if one alternative takes it (exactly one, for oneOf). Otherwise the
 * problem is the one alternative that fits the value's type says (a map whose `kind` names an
 * alternative is judged by that one), else "must be X or Y".
 */
function alternativeProblem(
  value: unknown,
  alternatives: JsonSchema[],
  exactlyOne: boolean,
  resolve: Resolve,
  path: string[],
): SchemaProblem | undefined {
  const options = alternatives.map((option) => (option.$ref !== undefined ? resolve(option.$ref) : option));
  const problems = options.map((option) => findProblem(value, option, resolve, path));
  const passing = problems.filter((problem) => problem === undefined).length;
  if (passing === 1 || (passing > 1 && !exactlyOne)) return undefined;
  if (passing > 1)
    return { path, message: `fits more than one of its forms (${options.map((option) => describe(option, resolve)).join('; ')})` };
  const fitting = options
    .map((option, index) => ({ option, problem: problems[index]! }))
    .filter(({ option }) => hasType(value, option.type));
  if (isMap(value) && fitting.length > 1) {
    const named = fitting.filter(({ option }) =>
      Object.entries(option.properties ?? {}).some(([name, member]) => member.const !== undefined && same(value[name], member.const)),
    );
    if (named.length === 1) return named[0]!.problem;
    const discriminator = Object.entries(fitting[0]!.option.properties ?? {}).find(([, member]) => member.const !== undefined)?.[0];
    if (discriminator !== undefined && fitting.every(({ option }) => option.properties?.[discriminator]?.const !== undefined)) {
      const values = fitting.map(({ option }) => String(option.properties![discriminator]!.const));
      return {
        path: [...path, discriminator],
        message: discriminator in value ? `must be one of ${values.join(', ')}` : `is required (one of ${values.join(', ')})`,
      };
    }
  }
  if (fitting.length === 1) return fitting[0]!.problem;
  return { path, message: `must be ${describe({ anyOf: options }, resolve)}` };
}

/**
 * The value with the defaults the broker fills: members a map leaves out that have a `default`, at
 * every depth the value reaches (a boundary's approval gets its ttl). A value the schema does not
 * take is returned as it is.
 */
export function withDefaults(value: unknown, schema: JsonSchema, resolve: Resolve): unknown {
  if (schema.$ref !== undefined) return withDefaults(value, resolve(schema.$ref), resolve);
  const alternatives = schema.anyOf ?? schema.oneOf;
  if (alternatives) {
    const fits = alternatives.find((option) => findProblem(value, option, resolve) === undefined);
    return fits ? withDefaults(value, fits, resolve) : value;
  }
  if (Array.isArray(value) && schema.items) return value.map((item) => withDefaults(item, schema.items!, resolve));
  if (!isMap(value) || !schema.properties) return value;
  const filled: Record<string, unknown> = {};
  for (const [name, member] of Object.entries(schema.properties)) {
    if (name in value) filled[name] = withDefaults(value[name], member, resolve);
    else {
      // A default may sit beside a $ref or in the schema it names.
      const fallback = member.default !== undefined ? member.default : member.$ref !== undefined ? resolve(member.$ref).default : undefined;
      if (fallback !== undefined) filled[name] = fallback;
    }
  }
  for (const [name, member] of Object.entries(value)) if (!(name in filled)) filled[name] = member;
  return filled;
}

/** "a string", "an integer or null", "a list of strings", "one of low, medium, high". */
export function describe(schema: JsonSchema, resolve: Resolve): string {
  if (schema.$ref !== undefined) return describe(resolve(schema.$ref), resolve);
  const alternatives = schema.anyOf ?? schema.oneOf;
  if (alternatives) return [...new Set(alternatives.map((option) => describe(option, resolve)))].join(' or ');
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  if (schema.enum)
    return `one of ${schema.enum.map((option) => (typeof option === 'string' ? option : JSON.stringify(option))).join(', ')}`;
  const types = typeof schema.type === 'string' ? [schema.type] : (schema.type ?? []);
  if (types.length === 0) return 'any value';
  return types
    .map((type) => {
      if (type === 'array') {
        const items = schema.items ? plural(schema.items, resolve) : undefined;
        return items ? `a list of ${items}` : 'a list';
      }
      return SINGULAR[type] ?? `a ${type}`;
    })
    .join(' or ');
}

const SINGULAR: Record<string, string> = {
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'true or false',
  object: 'a map',
  null: 'null',
};
const PLURAL: Record<string, string> = {
  string: 'strings',
  integer: 'integers',
  number: 'numbers',
  boolean: 'booleans',
  object: 'maps',
  array: 'lists',
};

function plural(schema: JsonSchema, resolve: Resolve): string | undefined {
  const resolved = schema.$ref !== undefined ? resolve(schema.$ref) : schema;
  return typeof resolved.type === 'string' && resolved.enum === undefined && resolved.const === undefined
    ? PLURAL[resolved.type]
    : undefined;
}

function hasType(value: unknown, type: string | string[] | undefined): boolean {
  if (type === undefined) return true;
  const types = typeof type === 'string' ? [type] : type;
  return types.some((one) => {
    switch (one) {
      case 'string':
        return typeof value === 'string';
      case 'integer':
        return Number.isInteger(value);
      case 'number':
        return typeof value === 'number' && Number.isFinite(value);
      case 'boolean':
        return typeof value === 'boolean';
      case 'null':
        return value === null;
      case 'array':
        return Array.isArray(value);
      case 'object':
        return isMap(value);
      default:
        return true;
    }
  });
}

/** JSON equality (enum and const compare values, not references). */
function same(a: unknown, b: unknown): boolean {
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((item, i) => same(item, b[i]));
  if (isMap(a))
    return (
      isMap(b) &&
      Object.keys(a).length === Object.keys(b).length &&
      Object.entries(a).every(([key, value]) => key in b && same(value, b[key]))
    );
  return a === b;
}

export function isMap(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
