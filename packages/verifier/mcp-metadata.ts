import type { IncomingMessage, ServerResponse } from 'node:http';
import { DPOP_ALGORITHMS } from './dpop.js';

/**
 * RFC 9728 protected-resource metadata for an MCP server: the document an MCP client fetches (from
 * the `resource_metadata` of a 401) to learn which authorization server issues tokens for it.
 */

/** The root well-known path; a resource with a path also answers at this path suffixed with its own. */
export const WELL_KNOWN_PATH = '/.well-known/oauth-protected-resource';

export interface ResourceMetadataOptions {
  /** This MCP server's URL as clients call it: the tokens' `aud`, the boundary's `tool`. */
  resource: string;
  /** The issuers that issue its tokens: Tollgate's public URL. */
  authorizationServers: string[];
  resourceName?: string;
  scopesSupported?: string[];
  /** Advertise DPoP (default true); `'required'` also says bearer tokens are not accepted. */
  dpop?: boolean | 'required';
  /** A page that tells a person how to use this server. */
  resourceDocumentation?: string;
}

/** The RFC 9728 §2 fields this package writes (others may be added by the caller). */
export interface ProtectedResourceMetadata {
  resource: string;
  authorization_servers: string[];
  bearer_methods_supported: ['header'];
  /** A Tollgate credential names one call as a RFC 9396 `tool_call` detail. */
  authorization_details_types_supported: ['tool_call'];
  resource_name?: string;
  scopes_supported?: string[];
  resource_documentation?: string;
  dpop_signing_alg_values_supported?: string[];
  dpop_bound_access_tokens_required?: boolean;
  [field: string]: unknown;
}

export function protectedResourceMetadata(options: ResourceMetadataOptions): ProtectedResourceMetadata {
  parseResource(options.resource, 'resource');
  if (options.authorizationServers.length === 0) throw new TypeError('authorizationServers: name at least one issuer');
  options.authorizationServers.forEach((issuer, index) => parseResource(issuer, `authorizationServers[${index}]`));
  const dpop = options.dpop ?? true;
  return {
    resource: options.resource,
    authorization_servers: [...options.authorizationServers],
    bearer_methods_supported: ['header'],
    authorization_details_types_supported: ['tool_call'],
    ...(options.resourceName ? { resource_name: options.resourceName } : {}),
    ...(options.scopesSupported ? { scopes_supported: [...options.scopesSupported] } : {}),
    ...(options.resourceDocumentation ? { resource_documentation: options.resourceDocumentation } : {}),
    ...(dpop ? { dpop_signing_alg_values_supported: [...DPOP_ALGORITHMS] } : {}),
    ...(dpop === 'required' ? { dpop_bound_access_tokens_required: true } : {}),
  };
}

/**
 * Where a resource's metadata lives (RFC 9728 §3.1): the well-known path goes between the host and
 * the resource's path, `https://mcp.acme.test/mcp` → `https://mcp.acme.test/.well-known/oauth-protected-resource/mcp`.
 */
export function protectedResourceMetadataUrl(resource: string): string {
  const url = parseResource(resource, 'resource');
  const path = url.pathname === '/' ? '' : url.pathname.replace(/\/+$/, '');
  return `${url.origin}${WELL_KNOWN_PATH}${path}${url.search}`;
}

/** The two paths the document is served at: the path-suffixed one of §3.1 and the root one. */
export function resourceMetadataPaths(resource: string): string[] {
  const suffixed = new URL(protectedResourceMetadataUrl(resource)).pathname;
  return suffixed === WELL_KNOWN_PATH ? [WELL_KNOWN_PATH] : [suffixed, WELL_KNOWN_PATH];
}

function parseResource(value: string, field: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new TypeError(`${field}: ${JSON.stringify(value)} is not an absolute URL`);
  }
  // RFC 9728 §1.2 / RFC 8707 §2: an identifier with a fragment names nothing a client can ask for.
  if (url.hash) throw new TypeError(`${field}: a resource identifier has no fragment`);
  return url;
}

// Serving it ------------------------------------------------------------------------------------

const HEADERS = { 'content-type': 'application/json', 'cache-control': 'max-age=300', 'access-control-allow-origin': '*' };

/**
 * For a `node:http` server: `if (serveMetadata(req, res)) return;` answers GET/HEAD of the
 * well-known paths and returns true; any other request returns false untouched.
 */
export function nodeResourceMetadata(metadata: ProtectedResourceMetadata): (req: IncomingMessage, res: ServerResponse) => boolean {
  const paths = resourceMetadataPaths(metadata.resource);
  const body = JSON.stringify(metadata);
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    if (!paths.includes(path) || (req.method !== 'GET' && req.method !== 'HEAD')) return false;
    res.writeHead(200, HEADERS).end(req.method === 'HEAD' ? undefined : body);
    return true;
  };
}

interface MetadataRequest {
  method: string;
  path?: string;
  url: string;
}
interface MetadataResponse {
  set(field: Record<string, string>): MetadataResponse;
  json(body: unknown): unknown;
}

/** Express middleware (`app.use(expressResourceMetadata(metadata))`) answering the well-known paths. */
export function expressResourceMetadata(metadata: ProtectedResourceMetadata) {
  const paths = resourceMetadataPaths(metadata.resource);
  return (req: MetadataRequest, res: MetadataResponse, next: () => void): void => {
    const path = req.path ?? req.url.split('?')[0]!;
    if (paths.includes(path) && (req.method === 'GET' || req.method === 'HEAD')) res.set(HEADERS).json(metadata);
    else next();
  };
}

/** The part of a Fastify instance the routes are added with. */
export interface FastifyLikeRoutes {
  get(path: string, handler: (request: unknown, reply: { headers(values: Record<string, string>): unknown }) => Promise<unknown>): unknown;
}

/** Adds GET routes for the well-known paths to a Fastify instance (Fastify answers HEAD from them). */
export function fastifyResourceMetadata(app: FastifyLikeRoutes, metadata: ProtectedResourceMetadata): void {
  for (const path of resourceMetadataPaths(metadata.resource)) {
    app.get(path, async (_request, reply) => {
      reply.headers(HEADERS);
      return metadata;
    });
  }
}
