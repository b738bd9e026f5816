import { quoted, type AdapterOptions } from './adapters.js';
import { DPOP_ALGORITHMS } from './dpop.js';
import { InsufficientScope, MissingToken, VerifierError, VerifierUnavailable } from './errors.js';
import type { ToolCall, VerifiedCall, Verifier } from './verifier.js';

/**
 * Tollgate in front of an MCP server (Streamable HTTP). A Tollgate credential names one call: the
 * tool (the credential's action) and its arguments (its params digest). `admitMcpRequest` reads
 * the JSON-RPC body and holds every `tools/call` to the credential presented with it; the handshake
 * and listing methods pass without one. The framework guards around it are in mcp-adapters.ts, the
 * RFC 9728 metadata in mcp-metadata.ts, and `mcpTokenVerifier` (for the SDK's own
 * `requireBearerAuth`) in mcp-token-verifier.ts.
 *
 * The SDK's shapes (AuthInfo, OAuthTokenVerifier) are typed structurally: this package needs
 * nothing of the SDK at run time, except the error classes `requireBearerAuth` maps (loaded lazily).
 */

/** The SDK's AuthInfo (`@modelcontextprotocol/sdk/server/auth/types.js`): tool handlers get it as `extra.authInfo`. */
export interface McpAuthInfo {
  token: string;
  clientId: string;
  scopes: string[];
  expiresAt?: number;
  resource?: URL;
  extra?: Record<string, unknown>;
}

/** What `extra` holds for a Tollgate credential. */
export interface TollgateAuthExtra {
  toolCall: ToolCall;
  taskId: string | undefined;
  /** The lease the credential is (its `jti`): revoking it revokes the token. */
  leaseId: string;
  subject: string | undefined;
  /** The DPoP key thumbprint the credential is bound to, if any. */
  boundTo: string | undefined;
  [field: string]: unknown;
}

export interface McpGuardOptions extends AdapterOptions {
  /** The `resource_metadata` of the challenges (default: RFC 9728 §3.1's URL for the verifier's audience). */
  resourceMetadataUrl?: string;
  /**
   * JSON-RPC methods that pass without a credential (a `/*` suffix matches a prefix). They neither
   * act nor return tool data. Default: DEFAULT_OPEN_METHODS.
   */
  openMethods?: readonly string[];
  /** The resource a tool call acts on, as its credential names it (`order/o-1`); none by default. */
  resourceOf?: (tool: string, args: unknown) => string | null | undefined;
  /** Offer the DPoP scheme in the 401 challenge (default true: the verifier accepts DPoP-bound tokens). */
  dpop?: boolean;
  /** The largest body the node:http guard reads (default 4 MiB, as the SDK's transport). */
  maxBodyBytes?: number;
}

/** The handshake, pings, notifications and listings: nothing acts, and no tool's data is returned. */
export const DEFAULT_OPEN_METHODS = [
  'initialize',
  'ping',
  'notifications/*',
  'tools/list',
  'resources/list',
  'resources/templates/list',
  'prompts/list',
] as const;

/** A body that is not JSON-RPC: answered 400 (or 413) with a JSON-RPC error, as the SDK would. */
export class InvalidMcpMessage extends Error {
  constructor(
    readonly rpcCode: -32700 | -32600 | -32602,
    message: string,
    readonly status: 400 | 413 = 400,
  ) {
    super(message);
    this.name = 'InvalidMcpMessage';
  }
}

/** The request the guard judges: its HTTP facts and its parsed JSON body. */
export interface McpRequest {
  method: string;
  /** The full URL the client called (a DPoP proof's `htu`). */
  url: string;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
}

/**
 * Judges one HTTP request to an MCP endpoint. Resolves with the AuthInfo of its credential, or
 * undefined when every message in it is open; throws a VerifierError (401/403/503) or an
 * InvalidMcpMessage (400). Requests other than POST carry no JSON-RPC message and pass.
 */
export async function admitMcpRequest(
  verifier: Verifier,
  request: McpRequest,
  options: McpGuardOptions = {},
): Promise<McpAuthInfo | undefined> {
  if (request.method.toUpperCase() !== 'POST') return undefined;
  const messages = jsonRpcMessages(request.body);
  const open = openMethodsOf(options);
  // A message without a method is the client's response to a server request: it answers, it does not ask.
  const guarded = messages.filter((message) => typeof message.method === 'string' && !isOpen(message.method, open));
  if (guarded.length === 0) return undefined;
  const calls = guarded.filter((message) => message.method === 'tools/call').map(toolCallOf);
  const verified = await verifier.verifyRequest({ method: request.method, url: request.url, headers: request.headers });
  if (calls.length > 1) {
    throw asPresented(new InsufficientScope('a credential names one tool call: send each tools/call in a request of its own'), verified);
  }
  for (const call of calls) {
    verified.checkCall({ action: call.name, params: call.args, resource: options.resourceOf?.(call.name, call.args) ?? null });
  }
  return authInfoOf(verified, verifier.options.audience);
}

/** The AuthInfo the SDK hands tool handlers, from a verified credential. */
export function authInfoOf(verified: VerifiedCall, resource: string): McpAuthInfo {
  const { claims } = verified;
  const extra: TollgateAuthExtra = {
    toolCall: verified.toolCall,
    taskId: claims.task_id,
    leaseId: claims.jti,
    subject: claims.sub,
    boundTo: verified.boundTo,
  };
  return {
    token: verified.token,
    clientId: claims.client_id ?? claims.sub ?? '',
    scopes: claims.scope ? claims.scope.split(' ').filter(Boolean) : [],
    expiresAt: claims.exp,
    ...(URL.canParse(resource) ? { resource: new URL(resource) } : {}),
    extra,
  };
}

// Refusals ---------------------------------------------------------------------------------------

export interface McpRefusal {
  status: number;
  headers: Record<string, string | string[]>;
  body: unknown;
}

/**
 * The answer the MCP authorization spec asks for: 401 with `WWW-Authenticate: Bearer
 * resource_metadata="…"` (and `error="invalid_token"` when a token came; a DPoP challenge beside
 * it), 403 `insufficient_scope`, 503 when the verifier cannot tell, 400 for a body that is not JSON-RPC.
 */
export function mcpRefusal(error: unknown, resourceMetadataUrl: string, options: Pick<McpGuardOptions, 'realm' | 'dpop'> = {}): McpRefusal {
  const noStore = { 'cache-control': 'no-store' };
  if (error instanceof InvalidMcpMessage) {
    return {
      status: error.status,
      headers: noStore,
      body: { jsonrpc: '2.0', error: { code: error.rpcCode, message: error.message }, id: null },
    };
  }
  if (!(error instanceof VerifierError)) return { status: 500, headers: noStore, body: { error: 'server_error' } };
  if (error instanceof VerifierUnavailable) {
    return { status: 503, headers: { ...noStore, 'retry-after': '1' }, body: { error: error.code, error_description: error.message } };
  }
  const common = [...(options.realm ? [`realm=${quoted(options.realm)}`] : []), `resource_metadata=${quoted(resourceMetadataUrl)}`];
  const algs = `algs=${quoted(DPOP_ALGORITHMS.join(' '))}`;
  const dpop = options.dpop ?? true;
  const bare = { Bearer: `Bearer ${common.join(', ')}`, DPoP: `DPoP ${[...common, algs].join(', ')}` };
  if (error instanceof MissingToken) {
    return {
      status: 401,
      headers: { ...noStore, 'www-authenticate': dpop ? [bare.Bearer, bare.DPoP] : bare.Bearer },
      body: { error: 'invalid_token', error_description: error.message },
    };
  }
  const described = [`error=${quoted(error.code)}`, `error_description=${quoted(error.message)}`, ...common];
  const scheme = error.scheme === 'DPoP' && dpop ? 'DPoP' : 'Bearer';
  const challenges = [`${scheme} ${[...described, ...(scheme === 'DPoP' ? [algs] : [])].join(', ')}`];
  // A 401 to a Bearer-presented token also offers DPoP: the token may be a bound one.
  if (error.status === 401 && scheme === 'Bearer' && dpop) challenges.push(bare.DPoP);
  return {
    status: error.status,
    headers: { ...noStore, 'www-authenticate': challenges.length === 1 ? challenges[0]! : challenges },
    body: { error: error.code, error_description: error.message },
  };
}

// Details ----------------------------------------------------------------------------------------

interface JsonRpcMessage {
  method?: unknown;
  params?: unknown;
}

function jsonRpcMessages(body: unknown): JsonRpcMessage[] {
  const items: unknown[] = Array.isArray(body) ? body : [body];
  if (items.length === 0 || !items.every((item) => typeof item === 'object' && item !== null && !Array.isArray(item))) {
    throw new InvalidMcpMessage(-32600, 'the body is not a JSON-RPC message or batch');
  }
  const messages = items as JsonRpcMessage[];
  // A method that is not a string is no request the SDK would serve, nor a response: refused, not passed as open.
  if (messages.some((message) => 'method' in message && typeof message.method !== 'string')) {
    throw new InvalidMcpMessage(-32600, 'a JSON-RPC method is a string');
  }
  return messages;
}

function toolCallOf(message: JsonRpcMessage): { name: string; args: unknown } {
  const params = message.params as { name?: unknown; arguments?: unknown } | undefined;
  if (typeof params !== 'object' || params === null || typeof params.name !== 'string') {
    throw new InvalidMcpMessage(-32602, 'tools/call needs params.name');
  }
  return { name: params.name, args: params.arguments };
}

/**
 * The methods that pass without a credential. `tools/call` is never one of them (a list that would
 * let it pass, say `tools/*`, is refused): the guard exists to hold it to its credential.
 */
export function openMethodsOf(options: Pick<McpGuardOptions, 'openMethods'>): readonly string[] {
  const open = options.openMethods ?? DEFAULT_OPEN_METHODS;
  const culprit = open.find((entry) => isOpen('tools/call', [entry]));
  if (culprit !== undefined) throw new TypeError(`openMethods: ${JSON.stringify(culprit)} would let tools/call pass without a credential`);
  return open;
}

function isOpen(method: string, open: readonly string[]): boolean {
  return open.some((entry) => (entry.endsWith('/*') ? method.startsWith(entry.slice(0, -1)) : method === entry));
}

/** Tags a refusal with the scheme the credential came with, so the challenge names it. */
function asPresented<E extends VerifierError>(error: E, verified: VerifiedCall): E {
  error.scheme = verified.boundTo ? 'DPoP' : 'Bearer';
  return error;
}
