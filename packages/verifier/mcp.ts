import type { IncomingMessage, ServerResponse } from 'node:http';
import { quoted, requestUrl, single, type AdapterOptions, type ExpressLikeResponse, type FastifyLikeReply } from './adapters.js';
import { DPOP_ALGORITHMS } from './dpop.js';
import { InsufficientScope, MissingToken, VerifierError, VerifierUnavailable } from './errors.js';
import { protectedResourceMetadataUrl } from './mcp-metadata.js';
import type { ToolCall, VerifiedCall, Verifier } from './verifier.js';

/**
 * Tollgate in front of an MCP server (Streamable HTTP). A Tollgate credential names one call: the
 * tool (the credential's action) and its arguments (its params digest). The guard reads the
 * JSON-RPC body and holds every `tools/call` to the credential presented with it; the handshake and
 * listing methods pass without one. `mcpTokenVerifier` fits the official SDK's `requireBearerAuth`
 * instead, for servers that check calls themselves.
 *
 * The SDK's shapes (AuthInfo, OAuthTokenVerifier) are typed here structurally: this package needs
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
  const open = options.openMethods ?? DEFAULT_OPEN_METHODS;
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

// The SDK's requireBearerAuth -------------------------------------------------------------------

/** The SDK's OAuthTokenVerifier (`@modelcontextprotocol/sdk/server/auth/provider.js`). */
export interface McpTokenVerifier {
  verifyAccessToken(token: string): Promise<McpAuthInfo>;
}

type SdkErrorClass = new (message: string) => Error;
/** The SDK's error classes `requireBearerAuth` maps to 401, 403 and 500 (`…/server/auth/errors.js`). */
export interface SdkAuthErrors {
  InvalidTokenError: SdkErrorClass;
  InsufficientScopeError: SdkErrorClass;
  ServerError: SdkErrorClass;
}

/**
 * An OAuthTokenVerifier for `requireBearerAuth({ verifier: mcpTokenVerifier(verifier), resourceMetadataUrl })`.
 * requireBearerAuth never sees a DPoP proof, so a DPoP-bound credential is refused here (RFC 9449
 * §7.2: never a bearer token); use the guard for those. It checks the token, not the call: a tool
 * handler then checks its own call with `checkCall(extra.authInfo.extra.toolCall, …)`.
 *
 * requireBearerAuth answers by the class of the error (`instanceof`), so refusals are thrown as the
 * SDK's own classes: passed as `errors`, or imported from the installed SDK on the first refusal.
 */
export function mcpTokenVerifier(verifier: Verifier, options: { errors?: SdkAuthErrors } = {}): McpTokenVerifier {
  let errors: Promise<SdkAuthErrors | undefined> | undefined = options.errors && Promise.resolve(options.errors);
  return {
    async verifyAccessToken(token) {
      try {
        // The URL is read only for a DPoP proof, and a Bearer-presented bound token is refused before.
        const verified = await verifier.verify(token, { method: 'POST', url: verifier.options.audience, scheme: 'Bearer' });
        return authInfoOf(verified, verifier.options.audience);
      } catch (error) {
        throw asSdkError(error, await (errors ??= loadSdkErrors()));
      }
    },
  };
}

// A variable, not a literal: bundlers and type-checkers of this package must not require the SDK.
const SDK_ERRORS = '@modelcontextprotocol/sdk/server/auth/errors.js';

async function loadSdkErrors(): Promise<SdkAuthErrors | undefined> {
  try {
    return (await import(SDK_ERRORS)) as SdkAuthErrors;
  } catch {
    return undefined;
  }
}

function asSdkError(error: unknown, sdk: SdkAuthErrors | undefined): unknown {
  if (!sdk || !(error instanceof VerifierError)) return error;
  // requireBearerAuth has no 503: a verifier that cannot tell answers 500, still refusing.
  if (error instanceof VerifierUnavailable) return new sdk.ServerError(error.message);
  if (error instanceof InsufficientScope) return new sdk.InsufficientScopeError(error.message);
  return new sdk.InvalidTokenError(error.message);
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

// Adapters ---------------------------------------------------------------------------------------

/** A `node:http` request as the SDK's transport reads it: `auth` becomes the tool handlers' authInfo. */
export type McpNodeRequest = IncomingMessage & { auth?: McpAuthInfo };

/**
 * For a `node:http` server, in front of `transport.handleRequest(req, res, body)`: reads and parses
 * the body, judges it, sets `req.auth`, and resolves with the parsed body, or answers the refusal
 * and resolves with undefined.
 */
export function mcpNodeGuard(verifier: Verifier, options: McpGuardOptions = {}) {
  const metadataUrl = options.resourceMetadataUrl ?? protectedResourceMetadataUrl(verifier.options.audience);
  return async (req: McpNodeRequest, res: ServerResponse): Promise<{ body: unknown } | undefined> => {
    try {
      const body = req.method === 'POST' ? await readJson(req, options.maxBodyBytes ?? 4 * 1024 * 1024) : undefined;
      const auth = await admitMcpRequest(
        verifier,
        { method: req.method ?? 'GET', url: requestUrl(req.url ?? '/', req.headers.host, options), headers: req.headers, body },
        options,
      );
      if (auth) req.auth = auth;
      return { body };
    } catch (error) {
      const refusal = mcpRefusal(error, metadataUrl, options);
      res.writeHead(refusal.status, { ...refusal.headers, 'content-type': 'application/json' }).end(JSON.stringify(refusal.body));
      return undefined;
    }
  };
}

/** The parts of Express's request the guard uses. */
export interface McpExpressRequest {
  method: string;
  originalUrl?: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  /** Parsed by `express.json()`; when absent the guard reads the stream itself. */
  body?: unknown;
  auth?: McpAuthInfo;
  [Symbol.asyncIterator]?: () => AsyncIterator<unknown>;
}

/**
 * Express middleware in front of the SDK's transport: `app.post('/mcp', mcpExpressGuard(verifier),
 * (req, res) => transport.handleRequest(req, res, req.body))`. Sets `req.auth` and `req.body`.
 */
export function mcpExpressGuard(verifier: Verifier, options: McpGuardOptions = {}) {
  const metadataUrl = options.resourceMetadataUrl ?? protectedResourceMetadataUrl(verifier.options.audience);
  return (req: McpExpressRequest, res: ExpressLikeResponse, next: (error?: unknown) => void): void => {
    const judged = async () => {
      if (req.method === 'POST' && req.body === undefined && req[Symbol.asyncIterator]) {
        req.body = await readJson(req as AsyncIterable<unknown>, options.maxBodyBytes ?? 4 * 1024 * 1024);
      }
      const url = requestUrl(req.originalUrl ?? req.url, single(req.headers.host), options);
      return admitMcpRequest(verifier, { method: req.method, url, headers: req.headers, body: req.body }, options);
    };
    judged().then(
      (auth) => {
        if (auth) req.auth = auth;
        next();
      },
      (error: unknown) => {
        const refusal = mcpRefusal(error, metadataUrl, options);
        res.status(refusal.status).set(refusal.headers).json(refusal.body);
      },
    );
  };
}

/** The parts of Fastify's request the hook uses; `raw` is what the SDK's transport is handed. */
export interface McpFastifyRequest {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  body?: unknown;
  auth?: McpAuthInfo;
  /** The node:http request underneath (Fastify's `request.raw`). */
  raw?: object;
}

/**
 * A Fastify `preHandler` hook (the body is parsed by then): `app.post('/mcp', { preHandler:
 * mcpFastifyGuard(verifier) }, (request, reply) => transport.handleRequest(request.raw, reply.raw, request.body))`.
 * Sets `auth` on the request and on `request.raw`, which the transport reads.
 */
export function mcpFastifyGuard(verifier: Verifier, options: McpGuardOptions = {}) {
  const metadataUrl = options.resourceMetadataUrl ?? protectedResourceMetadataUrl(verifier.options.audience);
  return async (request: McpFastifyRequest, reply: FastifyLikeReply): Promise<FastifyLikeReply | undefined> => {
    try {
      const url = requestUrl(request.url, single(request.headers.host), options);
      const auth = await admitMcpRequest(verifier, { method: request.method, url, headers: request.headers, body: request.body }, options);
      if (auth) {
        request.auth = auth;
        if (request.raw) (request.raw as { auth?: McpAuthInfo }).auth = auth;
      }
      return undefined;
    } catch (error) {
      const refusal = mcpRefusal(error, metadataUrl, options);
      await reply.code(refusal.status).headers(refusal.headers).send(refusal.body);
      // An async hook that answered returns the reply: Fastify then runs no handler.
      return reply;
    }
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

function isOpen(method: string, open: readonly string[]): boolean {
  return open.some((entry) => (entry.endsWith('/*') ? method.startsWith(entry.slice(0, -1)) : method === entry));
}

/** Tags a refusal with the scheme the credential came with, so the challenge names it. */
function asPresented<E extends VerifierError>(error: E, verified: VerifiedCall): E {
  error.scheme = verified.boundTo ? 'DPoP' : 'Bearer';
  return error;
}

async function readJson(stream: AsyncIterable<unknown>, limit: number): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk as Uint8Array);
    size += buffer.length;
    if (size > limit) throw new InvalidMcpMessage(-32600, `the body is larger than ${limit} bytes`, 413);
    chunks.push(buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    throw new InvalidMcpMessage(-32700, 'the body is not JSON');
  }
}
