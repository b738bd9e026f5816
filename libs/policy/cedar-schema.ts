import type { ParamsSchema, ParamsSchemas } from './boundary.js';

/**
 * The Cedar schema of Tollgate's request model, as text (the same as tollgate.cedarschema beside
 * this file, which a unit test keeps equal: the compiled service reads no files at run time).
 * Actions are boundary-defined, so `schemaFor` appends them: a policy naming an action no boundary
 * has is refused on write rather than silently never matching.
 */
export const CEDAR_SCHEMA = `// The entity and context model every Tollgate policy is validated against (libs/policy/cedar-schema.ts
// holds the same text; a unit test keeps them equal). The actions are not listed here: each
// boundary's actions are appended when a policy is validated, so a typo in an action name is an error.

// The requesting workload (a bot): \`Workload::"<workload id>"\`.
entity Workload;

// The tool of a boundary (its audience): \`Tool::"<tool>"\`, with the boundary it was requested under.
entity Tool {
  boundary: String,
  sensitivity: String,
  actions: Set<String>,
  intents: Set<String>,
};

// The replica's clock when the request was decided, in UTC; weekday 0 is Sunday.
type Now = { hour: Long, minute: Long, weekday: Long, unix: Long };

// The request's params as the bot sent them. Cedar records are closed, so a policy can only name a
// parameter listed here: add one with its type to use it (an undeclared parameter is a validation error).
type Params = {
  amount?: Long,
  currency?: String,
  owner?: String,
  account?: String,
  customer?: String,
  order?: String,
  reason?: String,
};

type RequestContext = {
  intent: String,
  subject: String,
  boundary: String,
  resource?: String,
  params: Params,
  purpose?: String,
  sensitivity: String,
  task_age_s: Long,
  denials_in_task: Long,
  // The request carries an approval a reviewer approved for exactly this request (its approval_id).
  approved: Bool,
  now: Now,
};
`;

/**
 * The schema with these actions declared, each applying to a workload acting on a tool. An action
 * whose arguments the boundary declares (`paramsSchemas`) gets its own context type, whose `params`
 * record is generated from that JSON Schema (paramsRecordType), so a policy can name any declared
 * argument under Cedar's strict validation; the others keep the seven global names.
 */
export function schemaFor(actions: Iterable<string>, paramsSchemas?: ParamsSchemas | null): string {
  const names = [...new Set(actions)].sort();
  if (names.length === 0) return CEDAR_SCHEMA;
  const plain = names.filter((name) => !paramsSchemas?.[name]);
  const declared = names.filter((name) => paramsSchemas?.[name]);
  let text = CEDAR_SCHEMA;
  if (plain.length > 0) text += `\naction ${plain.map((name) => JSON.stringify(name)).join(', ')} ${appliesTo('RequestContext')};\n`;
  declared.forEach((name, i) => {
    const context = CONTEXT_TYPE.replace('type RequestContext = {', `type RequestContext_${i} = {`).replace(
      'params: Params,',
      `params: ${paramsRecordType(paramsSchemas![name]!, 0)},`,
    );
    text += `\n${context}\naction ${JSON.stringify(name)} ${appliesTo(`RequestContext_${i}`)};\n`;
  });
  return text;
}

function appliesTo(context: string): string {
  return `appliesTo { principal: Workload, resource: Tool, context: ${context} }`;
}

/** The RequestContext declaration of CEDAR_SCHEMA, copied per action with its own params type. */
const CONTEXT_TYPE = CEDAR_SCHEMA.slice(CEDAR_SCHEMA.indexOf('type RequestContext = {'), CEDAR_SCHEMA.lastIndexOf('};') + 2);

/**
 * A JSON Schema as a Cedar type: string → String, integer → Long, boolean → Bool, object → a
 * record of its properties (required ones non-optional: the params were checked against the
 * schema before Cedar sees them), array → Set of its items. Anything else (number, null, unions,
 * an untyped value) has no Cedar type the request could be relied on to carry, so that argument is
 * left out: a policy naming it fails validation rather than never matching. Members starting `__`
 * are dropped, as the request drops them (libs/policy/cedar.ts).
 */
export function paramsRecordType(schema: ParamsSchema, depth: number): string {
  const properties = (schema.properties ?? {}) as Record<string, ParamsSchema>;
  const required = new Set(Array.isArray(schema.required) ? (schema.required as string[]) : []);
  const attributes: string[] = [];
  for (const [name, member] of Object.entries(properties)) {
    if (name.startsWith('__')) continue;
    const type = cedarType(member, depth + 1);
    if (type) attributes.push(`${JSON.stringify(name)}${required.has(name) ? '' : '?'}: ${type}`);
  }
  return `{ ${attributes.join(', ')} }`;
}

function cedarType(schema: ParamsSchema | undefined, depth: number): string | undefined {
  if (!schema || typeof schema !== 'object' || depth > 32) return undefined;
  switch (schema.type) {
    case 'string':
      return 'String';
    case 'integer':
      return 'Long';
    case 'boolean':
      return 'Bool';
    case 'object':
      return paramsRecordType(schema, depth);
    case 'array': {
      const items = cedarType(schema.items as ParamsSchema | undefined, depth + 1);
      return items && `Set<${items}>`;
    }
    default:
      return undefined;
  }
}
