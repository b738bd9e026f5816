import type { IncomingMessage, ServerResponse } from 'node:http';
import { requestUrl, single, type ExpressLikeResponse, type FastifyLikeReply } from './adapters.js';
import { admitMcpRequest, InvalidMcpMessage, mcpRefusal, openMethodsOf, type McpAuthInfo, type McpGuardOptions } from './mcp.js';
import { protectedResourceMetadataUrl } from './mcp-metadata.js';
import type { Verifier } from './verifier.js';

/**
 * The `tools/call` guard for node:http, Express and Fastify, in front of the official SDK's
 * StreamableHTTPServerTransport: each judges the request with admitMcpRequest, sets `auth` (the
 * transport hands it to tool handlers as `extra.authInfo`), or answers the refusal.
 */

/** A `node:http` request as the SDK's transport reads it: `auth` becomes the tool handlers' authInfo. */
export type McpNodeRequest = IncomingMessage & { auth?: McpAuthInfo };

/**
 * For a `node:http` server, in front of `transport.handleRequest(req, res, body)`: reads and parses
 * the body, judges it, sets `req.auth`, and resolves with the parsed body, or answers the refusal
 * and resolves with undefined.
 */
export function mcpNodeGuard(verifier: Verifier, options: McpGuardOptions = {}) {
  openMethodsOf(options); // a bad list fails here, at start, not on the first request
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
  openMethodsOf(options); // a bad list fails here, at start, not on the first request
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
  openMethodsOf(options); // a bad list fails here, at start, not on the first request
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
