import { RequestMethod, SetMetadata, type Type } from '@nestjs/common';
import { GUARDS_METADATA, HTTP_CODE_METADATA, METHOD_METADATA, PATH_METADATA } from '@nestjs/common/constants.js';
import { z } from 'zod';
import { AdminGuard, ApproverGuard, EventsGuard, ReviewerGuard, WorkloadGuard } from './auth.js';
import { RESPONSE_COMPONENTS } from './common/components.js';

/**
 * GET /openapi.json, generated from the code so it cannot drift: paths, methods, success statuses
 * and security come from Nest's own route metadata (the same metadata Nest registers the routes
 * from), request bodies and queries from the very zod schemas the handlers pass to parse(), and
 * response bodies from each resource's `<resource>.responses.ts` (named in common/components.ts).
 * The only hand-written part is one @ApiRoute per handler.
 *
 * Why not @nestjs/swagger: our inputs are zod schemas, not DTO classes, so every schema would be
 * handed to it raw anyway; what is left for it to do is reading the route metadata (the few lines
 * below), and it would bring Swagger UI and a 3.0-shaped schema model along with it.
 */

export type SecurityScheme = 'workloadAssertion' | 'apiKey' | 'oauthClient' | 'clientSecretBasic';
/** One alternative way to authenticate; OpenAPI 3.1 allows role names for http schemes. */
export type SecurityRequirement = Partial<Record<SecurityScheme, string[]>>;

/** A non-JSON response (event streams, Prometheus text), or a JSON one that needs its own words. */
export interface ResponseSpec {
  description: string;
  contentType?: string;
  schema?: z.ZodType;
}

export interface RouteDoc {
  summary: string;
  description?: string;
  /** The JSON body schema: the object the handler passes to parse(). */
  body?: z.ZodType;
  /** The application/x-www-form-urlencoded body schema (OAuth endpoints). */
  form?: z.ZodType;
  /** The query schema the handler passes to parse(query, 'query'). */
  query?: z.ZodObject;
  /** Request headers the handler reads. */
  headers?: Record<string, z.ZodType>;
  /** Success responses by status; a zod schema is a JSON body. Must include the status Nest answers with. */
  responses: Record<number, z.ZodType | ResponseSpec>;
  /** Error statuses beyond those every route of its kind has (400, 401, 413, 414, 415, 503 are derived). */
  errors?: number[];
  /** Only for routes that authenticate without a guard (the OAuth endpoints); [] means none. */
  security?: SecurityRequirement[];
}

const API_ROUTE = 'tollgate:openapi';

/** Documents one route. Every route needs one: test/openapi.e2e.spec.ts fails, naming the route, without it. */
export const ApiRoute = (doc: RouteDoc) => SetMetadata(API_ROUTE, doc);

/** The guards, as the security requirements they enforce. A new guard must be added here. */
/** What each guard lets in, by the route's method (the admin guard lets reviewers read). */
const GUARD_SECURITY = new Map<unknown, (method: string) => SecurityRequirement[]>([
  [WorkloadGuard, () => [{ workloadAssertion: [] }]],
  [AdminGuard, (method) => [{ apiKey: method.toUpperCase() === 'GET' ? ['admin', 'reviewer'] : ['admin'] }]],
  [ReviewerGuard, () => [{ apiKey: ['admin', 'reviewer'] }]],
  [ApproverGuard, () => [{ apiKey: ['admin', 'reviewer'] }]],
  [EventsGuard, () => [{ apiKey: ['admin', 'reviewer', 'resource_server'] }]],
]);

const SECURITY_SCHEMES = {
  workloadAssertion: {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'JWT',
    description:
      "The workload's JWT: a short-lived assertion signed with a key registered for the workload (PUT /v1/admin/workloads/{id}), or a token of a trusted issuer the workload is bound to (a SPIFFE JWT-SVID, a Kubernetes service-account token, an OIDC ID token; PUT /v1/admin/issuers/{id}).",
  },
  apiKey: {
    type: 'http',
    scheme: 'bearer',
    description:
      'An API key (POST /v1/admin/api-keys). Role "admin": everything; "reviewer": every read, and approving or denying approvals, never another write (403 insufficient_scope); "resource_server": introspection, revocation and events for its own audience.',
  },
  oauthClient: {
    type: 'http',
    scheme: 'bearer',
    description:
      "At the RFC 7662 / RFC 7009 endpoints: an API key as a bearer token (a workload may also present its assertion to revoke its own tokens). The same endpoints take client_secret_basic (clientSecretBasic), and in the form body client_secret_post (client_id + client_secret) or private_key_jwt (client_assertion_type + client_assertion, RFC 7523); client_id is the API key's id.",
  },
  clientSecretBasic: {
    type: 'http',
    scheme: 'basic',
    description: "client_secret_basic (RFC 6749 §2.3.1): the API key's id and the key, each form-urlencoded.",
  },
} as const;

/** The documented error responses; each body is the Error schema the error filter sends. */
const ERROR_RESPONSES: Record<number, { name: string; description: string; headers?: Record<string, unknown> }> = {
  400: {
    name: 'BadRequest',
    description:
      'invalid_request: malformed input; a schema violation or unknown field names it in `field`. invalid_dpop_proof: a DPoP proof that does not verify, fit the request, or was used before. At /oauth2/token, an RFC 6749 §5.2 code.',
  },
  401: {
    name: 'Unauthorized',
    description: 'invalid_client: missing or invalid workload assertion or API key.',
    headers: { 'WWW-Authenticate': { schema: { type: 'string' }, description: 'Bearer error="invalid_client"' } },
  },
  403: {
    name: 'Forbidden',
    description:
      "access_denied: the request was decided and refused; `reasons` says why, `decision_id` names the decision row. insufficient_scope: the API key's role does not allow this route.",
  },
  404: { name: 'NotFound', description: 'not_found: no such resource (or not one the caller owns).' },
  409: {
    name: 'Conflict',
    description:
      'The task has ended and can no longer change (`reasons: ["task_not_active"]`), an approval is no longer pending (`reasons: ["approval_approved" | "approval_denied" | "approval_used" | "approval_expired" | "approval_revoked"]`), or an admin change would clash with what exists (an issuer already trusted, a subject already bound).',
  },
  413: { name: 'PayloadTooLarge', description: 'The body is larger than 1 MiB.' },
  414: { name: 'UriTooLong', description: 'A path parameter is too long.' },
  415: { name: 'UnsupportedMediaType', description: 'Only application/json (and form encoding at /oauth2) is accepted.' },
  429: {
    name: 'TooManyRequests',
    description:
      'slow_down: the workload is over its credential-request rate limit; nothing was decided. Retry after `Retry-After` seconds (also `retry_after` in the body).',
    headers: { 'Retry-After': { schema: { type: 'integer' }, description: 'seconds' } },
  },
  503: {
    name: 'Unavailable',
    description: 'temporarily_unavailable: the database does not answer; nothing was issued. Retry shortly.',
    headers: { 'Retry-After': { schema: { type: 'integer' }, description: 'seconds' } },
  },
};

const STATUS_TEXT: Record<number, string> = { 200: 'OK', 201: 'Created', 202: 'Accepted', 204: 'No Content', 503: 'Service Unavailable' };
const BODY_METHODS = new Set(['post', 'put', 'patch', 'delete']);

export interface OpenApiBuild {
  document: Record<string, unknown>;
  /** Routes whose documentation is missing or inconsistent; each names the route. Empty when all is well. */
  problems: string[];
}

/** Builds the document from the controllers' route metadata. Called once at start. */
export function buildOpenApi(controllers: readonly Type[], options: { issuer: string }): OpenApiBuild {
  const problems: string[] = [];
  const paths: Record<string, Record<string, unknown>> = {};
  const tags: { name: string }[] = [];

  for (const controller of controllers) {
    const tag = controller.name.replace(/Controller$/, '');
    tags.push({ name: tag });
    const prefixes = asArray((Reflect.getMetadata(PATH_METADATA, controller) as string | string[] | undefined) ?? '');
    const classGuards = (Reflect.getMetadata(GUARDS_METADATA, controller) as unknown[] | undefined) ?? [];
    const prototype = controller.prototype as Record<string, unknown>;
    for (const name of Object.getOwnPropertyNames(prototype)) {
      const handler = prototype[name];
      if (name === 'constructor' || typeof handler !== 'function') continue;
      const routePaths = Reflect.getMetadata(PATH_METADATA, handler) as string | string[] | undefined;
      const requestMethod = Reflect.getMetadata(METHOD_METADATA, handler) as RequestMethod | undefined;
      if (routePaths === undefined || requestMethod === undefined) continue;
      const method = RequestMethod[requestMethod].toLowerCase();
      const guards = [...classGuards, ...((Reflect.getMetadata(GUARDS_METADATA, handler) as unknown[] | undefined) ?? [])];
      const doc = Reflect.getMetadata(API_ROUTE, handler) as RouteDoc | undefined;
      const status =
        (Reflect.getMetadata(HTTP_CODE_METADATA, handler) as number | undefined) ?? (requestMethod === RequestMethod.POST ? 201 : 200);
      for (const prefix of prefixes) {
        for (const routePath of asArray(routePaths)) {
          const path = openApiPath(prefix, routePath);
          const route = `${method.toUpperCase()} ${path} (${controller.name}.${name})`;
          const operation = doc
            ? describeOperation(route, doc, { method, path, guards, status, tag, operationId: `${tag}.${name}` }, problems)
            : undocumented(route, { path, tag, operationId: `${tag}.${name}` }, problems);
          paths[path] ??= {};
          if (paths[path][method]) problems.push(`${route}: ${method.toUpperCase()} ${path} is declared twice`);
          paths[path][method] = operation;
        }
      }
    }
  }

  const schemas: Record<string, unknown> = {};
  for (const [name, schema] of Object.entries(RESPONSE_COMPONENTS))
    schemas[name] = jsonSchema(schema, 'output', `components.schemas.${name}`, problems);
  const responses: Record<string, unknown> = {};
  for (const { name, description, headers } of Object.values(ERROR_RESPONSES)) {
    responses[name] = {
      description,
      ...(headers ? { headers } : {}),
      content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
    };
  }

  const document = {
    openapi: '3.1.1',
    info: {
      title: 'Tollgate',
      version: '1',
      summary: 'Workload identity and just-in-time credentials for AI agents',
      description:
        'Errors are `{"error", "error_description", ...}` (the Error schema) with RFC 6749 codes where one fits; denials add `reasons` and `decision_id`. No input yields a 500.',
      license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
    },
    servers: [{ url: options.issuer }],
    tags,
    paths,
    components: { schemas, responses, securitySchemes: SECURITY_SCHEMES },
  };
  return { document, problems };
}

interface RouteFacts {
  method: string;
  path: string;
  guards: unknown[];
  status: number;
  tag: string;
  operationId: string;
}

function describeOperation(route: string, doc: RouteDoc, facts: RouteFacts, problems: string[]): Record<string, unknown> {
  const pathParams = [...facts.path.matchAll(/\{([^}]+)\}/g)].map((match) => match[1]!);
  const parameters: unknown[] = pathParams.map((name) => ({ name, in: 'path', required: true, schema: { type: 'string' } }));
  if (doc.query) {
    const query = jsonSchema(doc.query, 'input', `${route} query`, problems) as {
      properties?: Record<string, unknown>;
      required?: string[];
    };
    for (const [name, schema] of Object.entries(query.properties ?? {})) {
      parameters.push({ name, in: 'query', required: query.required?.includes(name) ?? false, schema });
    }
  }
  for (const [name, schema] of Object.entries(doc.headers ?? {})) {
    parameters.push({ name, in: 'header', required: false, schema: jsonSchema(schema, 'input', `${route} header ${name}`, problems) });
  }

  let requestBody: Record<string, unknown> | undefined;
  const bodySchema = doc.body ?? doc.form;
  if (doc.body && doc.form) problems.push(`${route}: declares both body and form`);
  if (bodySchema) {
    const contentType = doc.body ? 'application/json' : 'application/x-www-form-urlencoded';
    // parse() reads a missing body as {}: the body is required exactly when {} is not valid.
    requestBody = {
      required: !bodySchema.safeParse({}).success,
      content: { [contentType]: { schema: jsonSchema(bodySchema, 'input', `${route} body`, problems) } },
    };
  } else if (BODY_METHODS.has(facts.method)) {
    problems.push(
      `${route}: has no request body schema: add body: <the zod schema its handler parses> (emptyBody if it takes none) to its @ApiRoute`,
    );
  }

  const guardSecurity: SecurityRequirement[] = [];
  for (const guard of facts.guards) {
    const requirement = GUARD_SECURITY.get(guard);
    if (requirement) guardSecurity.push(...requirement(facts.method));
    else
      problems.push(
        `${route}: guard ${(guard as { name?: string }).name ?? String(guard)} is not in GUARD_SECURITY (apps/broker/http/openapi.ts)`,
      );
  }
  const security = doc.security ?? guardSecurity;

  const responses: Record<string, unknown> = {};
  for (const [status, spec] of Object.entries(doc.responses))
    responses[status] = successResponse(Number(status), spec, `${route} ${status}`, problems);
  if (!(facts.status in doc.responses))
    problems.push(`${route}: answers ${facts.status} but documents only ${Object.keys(doc.responses).join(', ')}`);
  const hasInput = parameters.length > 0 || requestBody !== undefined;
  const errors = new Set(doc.errors ?? []);
  if (hasInput) errors.add(400);
  if (security.length > 0) errors.add(401);
  // An API key may be valid yet of a role the route does not allow.
  if (security.some((requirement) => 'apiKey' in requirement || 'oauthClient' in requirement)) errors.add(403);
  if (requestBody) {
    errors.add(413);
    errors.add(415);
  }
  if (pathParams.length > 0) errors.add(414);
  if (hasInput || security.length > 0) errors.add(503);
  for (const status of [...errors].sort((a, b) => a - b)) {
    const known = ERROR_RESPONSES[status];
    if (!known) problems.push(`${route}: error status ${status} has no entry in ERROR_RESPONSES`);
    else responses[status] ??= { $ref: `#/components/responses/${known.name}` };
  }

  return {
    tags: [facts.tag],
    operationId: facts.operationId,
    summary: doc.summary,
    ...(doc.description ? { description: doc.description } : {}),
    ...(parameters.length ? { parameters } : {}),
    ...(requestBody ? { requestBody } : {}),
    responses,
    security,
  };
}

/** A route without @ApiRoute still appears (its path and method are facts), flagged as a problem. */
function undocumented(
  route: string,
  facts: { path: string; tag: string; operationId: string },
  problems: string[],
): Record<string, unknown> {
  problems.push(`${route}: has no @ApiRoute({...}) (apps/broker/http/openapi.ts)`);
  const parameters = [...facts.path.matchAll(/\{([^}]+)\}/g)].map((match) => ({
    name: match[1]!,
    in: 'path',
    required: true,
    schema: { type: 'string' },
  }));
  return {
    tags: [facts.tag],
    operationId: facts.operationId,
    summary: 'undocumented',
    ...(parameters.length ? { parameters } : {}),
    responses: { default: { description: 'undocumented' } },
  };
}

function successResponse(status: number, spec: z.ZodType | ResponseSpec, where: string, problems: string[]): Record<string, unknown> {
  const { description, contentType, schema } =
    spec instanceof z.ZodType
      ? { description: spec.description ?? STATUS_TEXT[status] ?? String(status), contentType: 'application/json', schema: spec }
      : spec;
  return {
    description,
    ...(schema || contentType
      ? { content: { [contentType ?? 'application/json']: schema ? { schema: jsonSchema(schema, 'output', where, problems) } : {} } }
      : {}),
  };
}

/** JSON Schema 2020-12, OpenAPI 3.1's own dialect; a named response component is referred to by name. */
function jsonSchema(schema: z.ZodType, io: 'input' | 'output', where: string, problems: string[]): Record<string, unknown> {
  for (const [name, component] of Object.entries(RESPONSE_COMPONENTS)) {
    if (component === schema && !where.startsWith('components.')) return { $ref: `#/components/schemas/${name}` };
  }
  try {
    const { $schema: _dialect, ...converted } = z.toJSONSchema(schema, { target: 'draft-2020-12', io }) as Record<string, unknown>;
    return converted;
  } catch (error) {
    problems.push(`${where}: the schema cannot be expressed in JSON Schema (${error instanceof Error ? error.message : String(error)})`);
    return {};
  }
}

/** Nest's `v1/tasks` + `:id/credentials` as OpenAPI's `/v1/tasks/{id}/credentials`. */
function openApiPath(prefix: string, path: string): string {
  const joined = [prefix, path]
    .flatMap((part) => part.split('/'))
    .filter(Boolean)
    .join('/');
  return `/${joined}`.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}

function asArray<T>(value: T | T[]): T[] {
  return Array.isArray(value) ? value : [value];
}

/** The 201 of a PUT that created what it names (the same body as its 200). */
export function created(schema: z.ZodType): ResponseSpec {
  return { description: 'Created', schema };
}
