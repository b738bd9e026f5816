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

/** The schema with these actions declared, each applying to a workload acting on a tool. */
export function schemaFor(actions: Iterable<string>): string {
  const names = [...new Set(actions)].sort();
  if (names.length === 0) return CEDAR_SCHEMA;
  const list = names.map((name) => JSON.stringify(name)).join(', ');
  return `${CEDAR_SCHEMA}\naction ${list} appliesTo { principal: Workload, resource: Tool, context: RequestContext };\n`;
}
