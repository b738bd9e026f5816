import { readFileSync } from 'node:fs';
import type { BrokerApi } from '../api.js';
import { putSchemas, SECTIONS, type Body, type PutSchemas } from '../apply/manifest.js';
import { describeChange } from '../apply/plan.js';
import { Command, type Io } from '../context.js';
import { ApiRefused, Unreachable, UsageError } from '../errors.js';
import { planImport, type ActionChange, type ImportPlan } from '../mcp/boundary.js';
import { listTools } from '../mcp/tools.js';

/**
 * `tollgate mcp import <url> --boundary ID [--intent I]... [--default-ttl S --max-ttl S] [--dry-run]`:
 * lists an MCP server's tools (`tools/list` over Streamable HTTP) and writes the boundary for it,
 * showing the plan first as `apply` does: the server URL is the boundary's tool (the credential's
 * aud, the `resource` an MCP client asks the token endpoint for), each tool an action, each input
 * schema that action's params schema.
 */
export async function mcp(io: Io, args: string[]): Promise<number> {
  const [verb, ...rest] = args;
  if (verb !== 'import') throw new UsageError(`mcp: expected import${verb === undefined ? '' : `, got "${verb}"`}`);
  const command = new Command({
    name: 'mcp import',
    io,
    args: rest,
    options: {
      boundary: { type: 'string' },
      intent: { type: 'string', multiple: true },
      'default-ttl': { type: 'string' },
      'max-ttl': { type: 'string' },
      'dry-run': { type: 'boolean' },
    },
  });
  const [url] = command.expectPositionals('url');
  const serverUrl = mcpUrl(url!);
  const boundaryId = command.option('boundary');
  if (boundaryId === undefined) throw new UsageError('mcp import: --boundary ID is required (the boundary to write)');
  const request = {
    boundaryId,
    serverUrl,
    intents: command.list('intent'),
    defaultTtl: seconds(command.option('default-ttl'), '--default-ttl'),
    maxTtl: seconds(command.option('max-ttl'), '--max-ttl'),
  };

  const api = command.api();
  const schemas = await brokerSchemas(api);
  const current = await currentBoundary(api, boundaryId);
  const tools = await listTools(new URL(serverUrl), version());
  if (tools.length === 0)
    throw new UsageError(`mcp import: the MCP server at ${serverUrl} lists no tools: a boundary needs an action`, false);
  const planned = planImport({ ...request, tools }, current, schemas);
  const dryRun = command.flag('dry-run');

  if (!command.json) printPlan((text) => command.print(text), planned, dryRun);
  const { change } = planned;
  if (!change || dryRun) {
    if (command.json) command.printJson(planJson(planned, false));
    return 0;
  }
  const path = `${SECTIONS.boundary.path}/${encodeURIComponent(boundaryId)}`;
  try {
    await api.put(path, change.body);
  } catch (error) {
    if (!(error instanceof ApiRefused)) throw error;
    const at = error.field && error.field !== 'body' ? `.${error.field}` : '';
    throw new ApiRefused(`${change.action} boundary/${boundaryId} refused at boundaries.${boundaryId}${at}: ${error.message}`, error);
  }
  if (command.json) command.printJson(planJson(planned, true));
  else command.print(`Applied 1 change(s).`);
  return 0;
}

function printPlan(print: (text: string) => void, planned: ImportPlan, dryRun: boolean): void {
  const { change, actions, schemasApplied } = planned;
  if (change) print(describeChange(change));
  for (const action of actions) if (change || action.action !== '=') print(describeAction(action));
  if (!schemasApplied) print("  (this broker's boundaries take no params schemas yet: the tools' input schemas are shown, not written)");
  if (!change) print('No changes.');
  else if (dryRun) print('Dry run: 1 change(s) planned, nothing applied.');
}

/** `    + action get_forecast  {"type":"object",...}`: the schema in full, as it would be written. */
function describeAction({ action, name, paramsSchema }: ActionChange): string {
  const schema = paramsSchema === undefined ? '' : `  params_schema ${JSON.stringify(paramsSchema)}`;
  return `    ${action === '=' ? ' ' : action} action ${name}${schema}`;
}

function planJson({ change, actions, schemasApplied }: ImportPlan, applied: boolean) {
  const changes = change
    ? [{ action: change.action, kind: change.kind, id: change.id, ...(change.fields ? { fields: change.fields } : {}) }]
    : [];
  return {
    changes,
    applied: applied ? changes : [],
    actions: actions.map(({ action, name, paramsSchema }) => ({
      change: { '+': 'add', '~': 'change', '-': 'remove', '=': 'same' }[action],
      name,
      ...(paramsSchema ? { params_schema: paramsSchema } : {}),
    })),
    params_schemas_applied: schemasApplied,
  };
}

/** An http(s) URL without a fragment: RFC 8707 refuses a resource with one. Kept as written: it is the tool's name. */
function mcpUrl(text: string): string {
  const url = text.trim();
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError(`mcp import: "${url}" is not a URL`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new UsageError('mcp import: the MCP server URL must be http(s)');
  if (url.includes('#')) throw new UsageError('mcp import: the MCP server URL must not have a fragment');
  return url;
}

function seconds(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (!/^[1-9][0-9]*$/.test(value)) throw new UsageError(`mcp import: ${name}: must be a whole number of seconds`);
  return Number(value);
}

async function brokerSchemas(api: BrokerApi): Promise<PutSchemas> {
  const document = await api.get<unknown>('/openapi.json');
  try {
    return putSchemas(document);
  } catch (error) {
    throw new Unreachable(`the broker at ${api.url} cannot be imported into: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/** The boundary the broker holds under the id, or undefined; an id it would refuse is a usage error. */
async function currentBoundary(api: BrokerApi, id: string): Promise<Body | undefined> {
  try {
    return await api.get<Body>(`${SECTIONS.boundary.path}/${encodeURIComponent(id)}`);
  } catch (error) {
    if (!(error instanceof ApiRefused)) throw error;
    if (error.status === 404) return undefined;
    if (error.status !== 400 && error.status !== 414) throw error;
    throw new UsageError(
      `mcp import: --boundary: the id ${error.field === 'id' ? error.description.replace(/^id: /, '') : error.description}`,
    );
  }
}

/** The CLI's version, named to the MCP server as the client's. */
function version(): string {
  return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}
