import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { requireBearerAuth } from '@modelcontextprotocol/sdk/server/auth/middleware/bearerAuth.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import * as DPoP from 'dpop';
import express from 'express';
import Fastify from 'fastify';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  createVerifier,
  expressResourceMetadata,
  fastifyResourceMetadata,
  mcpExpressGuard,
  mcpFastifyGuard,
  mcpNodeGuard,
  mcpTokenVerifier,
  nodeResourceMetadata,
  protectedResourceMetadata,
  protectedResourceMetadataUrl,
  type McpAuthInfo,
  type Verifier,
} from '../packages/verifier/index.js';
import { freePort, type TestBroker } from './support/broker.js';
import { call } from './support/http.js';
import { asAdmin, putBoundary, startWithBot, type Bot } from './support/scenario.js';

/**
 * The verifier's MCP side (issue 14): the official MCP SDK's server (McpServer, Streamable HTTP,
 * stateless) behind the tools/call guard on Express, node:http and Fastify, called by the official
 * client with credentials from a real broker; and the SDK's own requireBearerAuth with mcpTokenVerifier.
 */

let broker: TestBroker;
let bot: Bot;
let issuer: string;
const verifiers: Verifier[] = [];
const closers: (() => Promise<void>)[] = [];

/** The MCP server every test talks to: `refund` and `lookup`, each echoing its arguments and authInfo. */
function mcpServer(): McpServer {
  const server = new McpServer({ name: 'crm', version: '1.0.0' });
  const echo = (tool: string) => async (args: unknown, extra: { authInfo?: McpAuthInfo }) => ({
    content: [{ type: 'text' as const, text: JSON.stringify({ tool, args, authInfo: extra.authInfo ?? null }) }],
  });
  server.registerTool('refund', { inputSchema: { order: z.string(), amount: z.number() } }, echo('refund'));
  server.registerTool('lookup', { inputSchema: { order: z.string() } }, echo('lookup'));
  return server;
}

/** Stateless Streamable HTTP: a server and a transport per request, as the SDK's example does. */
async function handleMcp(req: IncomingMessage, res: ServerResponse, body: unknown): Promise<void> {
  const server = mcpServer();
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
  res.on('close', () => {
    void transport.close();
    void server.close();
  });
  await server.connect(transport);
  await transport.handleRequest(req, res, body);
}

/** A listening server (its handler set once its URL, the boundary's tool, is known). */
async function listen(): Promise<{ server: Server; base: string }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { server, base: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

/** A boundary whose tool is the MCP server's URL, and a verifier for it following revocations. */
async function guardFor(id: string, url: string): Promise<Verifier> {
  await putBoundary(broker, id, { tool: url, actions: ['refund', 'lookup'] });
  const key = await asAdmin(broker)('POST', '/v1/admin/api-keys', { role: 'resource_server', audience: url, label: id });
  expect(key.status).toBe(201);
  const verifier = createVerifier({ issuer, audience: url, revocation: { apiKey: key.body.key as string, url: broker.url } });
  verifiers.push(verifier);
  await verifier.ready();
  return verifier;
}

interface Mcp {
  url: string;
  boundary: string;
}

/** Express, with its JSON body parser or (`json` false) with the guard reading the body itself. */
async function expressMcp(json = true): Promise<Mcp> {
  const { server, base } = await listen();
  const url = `${base}/mcp`;
  const boundary = json ? 'mcp-express' : 'mcp-express-raw';
  const verifier = await guardFor(boundary, url);
  const app = express();
  if (json) app.use(express.json());
  app.use(
    expressResourceMetadata(
      protectedResourceMetadata({ resource: url, authorizationServers: [issuer], resourceName: 'CRM' }),
    ) as express.RequestHandler,
  );
  app.all('/mcp', mcpExpressGuard(verifier) as express.RequestHandler, (req, res) => {
    void handleMcp(req, res, req.body);
  });
  server.on('request', app);
  return { url, boundary };
}

async function nodeMcp(): Promise<Mcp> {
  const { server, base } = await listen();
  const url = `${base}/mcp`;
  const verifier = await guardFor('mcp-node', url);
  const metadata = nodeResourceMetadata(protectedResourceMetadata({ resource: url, authorizationServers: [issuer] }));
  const guard = mcpNodeGuard(verifier);
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (metadata(req, res)) return;
    void guard(req, res).then((admitted) => admitted && handleMcp(req, res, admitted.body));
  });
  return { url, boundary: 'mcp-node' };
}

async function fastifyMcp(): Promise<Mcp> {
  // Fastify adds no route once listening: the port (and so the URL) is chosen first.
  const port = await freePort();
  const url = `http://127.0.0.1:${port}/mcp`;
  const verifier = await guardFor('mcp-fastify', url);
  const app = Fastify();
  fastifyResourceMetadata(app, protectedResourceMetadata({ resource: url, authorizationServers: [issuer] }));
  app.post('/mcp', { preHandler: mcpFastifyGuard(verifier) }, async (request, reply) => {
    reply.hijack();
    await handleMcp(request.raw, reply.raw, request.body);
  });
  await app.listen({ port, host: '127.0.0.1' });
  closers.push(() => app.close());
  return { url, boundary: 'mcp-fastify' };
}

/** A credential for one tool call, from the broker (DPoP-bound when a key is given). */
async function credential(boundary: string, action: string, params: unknown, dpopKey?: Awaited<ReturnType<typeof DPoP.generateKeyPair>>) {
  const taskId = await bot.openTask();
  const path = `/v1/tasks/${taskId}/credentials`;
  const headers: Record<string, string> = dpopKey ? { dpop: await DPoP.generateProof(dpopKey, `${broker.url}${path}`, 'POST') } : {};
  const response = await call(broker.url, 'POST', path, { token: await bot.token(), json: { boundary, action, params }, headers });
  expect(response.status, JSON.stringify(response.body)).toBe(201);
  return { taskId, token: response.body.credential.access_token as string };
}

/**
 * The official client; `authorize` gives the headers for each tools/call request (only those carry
 * a credential: the handshake goes without, as the guard lets it).
 */
async function connect(url: string, authorize: () => Promise<Record<string, string>>): Promise<Client> {
  const client = new Client({ name: 'support-bot', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    fetch: async (input, init) => {
      const headers = new Headers(init?.headers);
      if (typeof init?.body === 'string' && init.body.includes('"tools/call"')) {
        for (const [name, value] of Object.entries(await authorize())) headers.set(name, value);
      }
      return fetch(input, { ...init, headers });
    },
  });
  await client.connect(transport);
  closers.push(() => client.close());
  return client;
}

const bearer = (token: string) => async () => ({ authorization: `Bearer ${token}` });

/** One JSON-RPC POST, as the client would send it. */
function rpc(url: string, body: unknown, headers: Record<string, string> = {}) {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}
const toolCall = (name: string, args: unknown, id = 1) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } });

function echoed(result: Awaited<ReturnType<Client['callTool']>>): {
  tool: string;
  args: unknown;
  authInfo: McpAuthInfo & { resource: string };
} {
  return JSON.parse((result.content as { text: string }[])[0]!.text);
}

beforeAll(async () => {
  ({ broker, bot } = await startWithBot());
  const probe = await bot.credential(await bot.openTask(), { boundary: 'crm-orders', action: 'orders:read' });
  issuer = decodeJwt(probe.body.credential.access_token as string).iss!;
}, 60_000);

afterAll(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  await Promise.all(verifiers.map((verifier) => verifier.close()));
  await broker?.close();
});

describe.each([
  ['Express', () => expressMcp()],
  ['Express without express.json()', () => expressMcp(false)],
  ['node:http', nodeMcp],
])('the tools/call guard on %s, in front of the official SDK server', (_name, start) => {
  let mcp: Mcp;
  beforeAll(async () => {
    mcp = await start();
  });

  it('a good call: the tool runs and its handler sees the credential as authInfo', async () => {
    const args = { order: 'o-1', amount: 49 };
    const { token, taskId } = await credential(mcp.boundary, 'refund', args);
    const client = await connect(mcp.url, bearer(token));
    // The handshake and the listing went without a credential.
    expect((await client.listTools()).tools.map((tool) => tool.name).sort()).toEqual(['lookup', 'refund']);
    const result = echoed(await client.callTool({ name: 'refund', arguments: args }));
    expect(result.args).toEqual(args);
    expect(result.authInfo).toMatchObject({
      token,
      clientId: 'chatbot',
      scopes: ['refund'],
      expiresAt: decodeJwt(token).exp,
      resource: mcp.url,
      extra: { taskId, leaseId: decodeJwt(token).jti, toolCall: { type: 'tool_call', action: 'refund', tool: mcp.url } },
    });
  });

  it('no credential: 401 with resource_metadata, whose URL serves the RFC 9728 document naming the broker', async () => {
    const refused = await rpc(mcp.url, toolCall('refund', { order: 'o-1', amount: 49 }));
    expect(refused.status).toBe(401);
    const metadataUrl = protectedResourceMetadataUrl(mcp.url);
    expect(metadataUrl).toBe(mcp.url.replace('/mcp', '/.well-known/oauth-protected-resource/mcp'));
    const challenge = refused.headers.get('www-authenticate')!;
    expect(challenge).toMatch(new RegExp(`^Bearer resource_metadata="${metadataUrl}", DPoP resource_metadata="${metadataUrl}", algs="`));
    expect(challenge).not.toMatch(/error=/);
    for (const at of [metadataUrl, new URL('/.well-known/oauth-protected-resource', mcp.url).href]) {
      const document = await fetch(at);
      expect(document.status).toBe(200);
      expect(await document.json()).toMatchObject({
        resource: mcp.url,
        authorization_servers: [issuer],
        bearer_methods_supported: ['header'],
        dpop_signing_alg_values_supported: expect.arrayContaining(['ES256', 'EdDSA']),
      });
    }
    // A method that is neither a tools/call nor open needs a credential too.
    expect((await rpc(mcp.url, { jsonrpc: '2.0', id: 2, method: 'resources/read', params: { uri: 'crm://x' } })).status).toBe(401);
  });

  it('another tool than the credential names: 403 insufficient_scope', async () => {
    const { token } = await credential(mcp.boundary, 'refund', { order: 'o-1', amount: 49 });
    const refused = await rpc(mcp.url, toolCall('lookup', { order: 'o-1', amount: 49 }), { authorization: `Bearer ${token}` });
    expect(refused.status).toBe(403);
    expect(refused.headers.get('www-authenticate')).toMatch(
      new RegExp(
        `^Bearer error="insufficient_scope", error_description="[^"]+", resource_metadata="${protectedResourceMetadataUrl(mcp.url)}"$`,
      ),
    );
    expect(await refused.json()).toMatchObject({ error: 'insufficient_scope' });
  });

  it('changed arguments (the digest does not match): 403, and the tool never runs', async () => {
    const { token } = await credential(mcp.boundary, 'refund', { order: 'o-1', amount: 49 });
    const client = await connect(mcp.url, bearer(token));
    const error = await client.callTool({ name: 'refund', arguments: { order: 'o-1', amount: 5000 } }).catch((thrown: unknown) => thrown);
    expect(error).toMatchObject({ code: 403, message: expect.stringMatching(/insufficient_scope/) });
    const refused = await rpc(mcp.url, toolCall('refund', { order: 'o-1', amount: 5000 }), { authorization: `Bearer ${token}` });
    expect(await refused.json()).toMatchObject({ error: 'insufficient_scope', error_description: expect.stringMatching(/params/) });
  });

  it('a DPoP-bound credential: refused as Bearer (401), accepted with its proof, refused with the proof replayed', async () => {
    const key = await DPoP.generateKeyPair('ES256');
    const args = { order: 'o-2', amount: 10 };
    const { token } = await credential(mcp.boundary, 'refund', args, key);
    const asBearer = await rpc(mcp.url, toolCall('refund', args), { authorization: `Bearer ${token}` });
    expect(asBearer.status).toBe(401);
    expect(asBearer.headers.get('www-authenticate')).toMatch(
      /^Bearer error="invalid_token", error_description="[^"]*DPoP[^"]*", resource_metadata="[^"]+", DPoP /,
    );

    let proof = '';
    const client = await connect(mcp.url, async () => {
      proof = await DPoP.generateProof(key, mcp.url, 'POST', undefined, token);
      return { authorization: `DPoP ${token}`, dpop: proof };
    });
    const result = echoed(await client.callTool({ name: 'refund', arguments: args }));
    expect(result.authInfo.extra).toMatchObject({ boundTo: (decodeJwt(token).cnf as { jkt: string }).jkt });

    const replayed = await rpc(mcp.url, toolCall('refund', args), { authorization: `DPoP ${token}`, dpop: proof });
    expect(replayed.status).toBe(401);
    expect(replayed.headers.get('www-authenticate')).toMatch(
      /^DPoP error="invalid_dpop_proof", error_description="DPoP proof: the proof was used before", resource_metadata="[^"]+", algs="/,
    );
  });

  // Propagation time is measured by bench/verifier-revocation.mjs; here the bound is loose, for a loaded CI machine.
  it('the task completed: its credential is refused (401 invalid_token), from the event stream', async () => {
    const args = { order: 'o-3', amount: 5 };
    const { token, taskId } = await credential(mcp.boundary, 'refund', args);
    const headers = { authorization: `Bearer ${token}` };
    expect((await rpc(mcp.url, toolCall('refund', args), headers)).status).toBe(200);
    expect((await bot.call('POST', `/v1/tasks/${taskId}/complete`)).status).toBe(200);
    const started = performance.now();
    let refused: Response | undefined;
    while (performance.now() - started < 5_000) {
      const answer = await rpc(mcp.url, toolCall('refund', args), headers);
      if (answer.status !== 200) {
        refused = answer;
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(refused?.status).toBe(401);
    expect(refused?.headers.get('www-authenticate')).toMatch(/^Bearer error="invalid_token", error_description="[^"]*revoked/);
  });

  it('a batch with two tools/call is refused (a credential names one call); a body that is not JSON-RPC is 400', async () => {
    const args = { order: 'o-1', amount: 49 };
    const { token } = await credential(mcp.boundary, 'refund', args);
    const batch = await rpc(mcp.url, [toolCall('refund', args, 1), toolCall('refund', args, 2)], { authorization: `Bearer ${token}` });
    expect(batch.status).toBe(403);
    expect(await batch.json()).toMatchObject({ error: 'insufficient_scope', error_description: expect.stringMatching(/one tool call/) });
    const garbled = await rpc(mcp.url, '{"jsonrpc":', { authorization: `Bearer ${token}` });
    expect(garbled.status).toBe(400);
    const notRpc = await rpc(mcp.url, [], { authorization: `Bearer ${token}` });
    expect(notRpc.status).toBe(400);
  });
});

describe('the tools/call guard on Fastify', () => {
  it('runs the credential’s call and refuses another', async () => {
    const mcp = await fastifyMcp();
    const args = { order: 'o-1', amount: 49 };
    const { token } = await credential(mcp.boundary, 'refund', args);
    const client = await connect(mcp.url, bearer(token));
    expect(echoed(await client.callTool({ name: 'refund', arguments: args })).authInfo.extra).toMatchObject({
      toolCall: { action: 'refund' },
    });
    const refused = await rpc(mcp.url, toolCall('lookup', { order: 'o-1' }), { authorization: `Bearer ${token}` });
    expect(refused.status).toBe(403);
    expect((await rpc(mcp.url, toolCall('refund', args))).headers.get('www-authenticate')).toMatch(/resource_metadata=/);
    expect((await fetch(protectedResourceMetadataUrl(mcp.url))).status).toBe(200);
  });
});

describe('a verifier that cannot tell', () => {
  it('neither the event stream nor introspection answering: 503 with Retry-After, and the tool never runs', async () => {
    const { server, base } = await listen();
    const url = `${base}/mcp`;
    await putBoundary(broker, 'mcp-unavailable', { tool: url, actions: ['refund'] });
    const unreachable: typeof fetch = () => Promise.reject(new TypeError('fetch failed (broker unreachable)'));
    const verifier = createVerifier({ issuer, audience: url, revocation: { apiKey: 'tgrs_unused', fetch: unreachable, staleAfterMs: 0 } });
    verifiers.push(verifier);
    const guard = mcpNodeGuard(verifier);
    let ran = false;
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      void guard(req, res).then((admitted) => {
        ran = admitted !== undefined;
        if (admitted) res.end();
      });
    });
    const args = { order: 'o-1', amount: 1 };
    const { token } = await credential('mcp-unavailable', 'refund', args);
    const refused = await rpc(url, toolCall('refund', args), { authorization: `Bearer ${token}` });
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('1');
    expect(await refused.json()).toMatchObject({ error: 'temporarily_unavailable' });
    expect(ran).toBe(false);
  });
});

describe("the SDK's requireBearerAuth with mcpTokenVerifier", () => {
  let url: string;
  beforeAll(async () => {
    const { server, base } = await listen();
    url = `${base}/mcp`;
    const verifier = await guardFor('mcp-bearer-auth', url);
    const app = express();
    app.use(express.json());
    app.post(
      '/mcp',
      requireBearerAuth({ verifier: mcpTokenVerifier(verifier), resourceMetadataUrl: protectedResourceMetadataUrl(url) }),
      (req, res) => {
        void handleMcp(req, res, req.body);
      },
    );
    server.on('request', app);
  });

  it('accepts a bearer credential: the handler sees its authInfo', async () => {
    const args = { order: 'o-9', amount: 1 };
    const { token } = await credential('mcp-bearer-auth', 'refund', args);
    const result = await rpc(url, toolCall('refund', args), { authorization: `Bearer ${token}` });
    expect(result.status).toBe(200);
    const text = ((await result.json()) as { result: { content: { text: string }[] } }).result.content[0]!.text;
    expect(JSON.parse(text)).toMatchObject({ authInfo: { clientId: 'chatbot', extra: { leaseId: decodeJwt(token).jti } } });
  });

  it('refuses a DPoP-bound credential (401 invalid_token, with resource_metadata), and a forged one', async () => {
    const key = await DPoP.generateKeyPair('ES256');
    const args = { order: 'o-9', amount: 1 };
    const { token } = await credential('mcp-bearer-auth', 'refund', args, key);
    const refused = await rpc(url, toolCall('refund', args), { authorization: `Bearer ${token}` });
    expect(refused.status).toBe(401);
    expect(refused.headers.get('www-authenticate')).toMatch(
      new RegExp(
        `^Bearer error="invalid_token", error_description="[^"]*DPoP[^"]*", resource_metadata="${protectedResourceMetadataUrl(url)}"`,
      ),
    );
    const forged = await rpc(url, toolCall('refund', args), { authorization: `Bearer ${token.slice(0, -4)}AAAA` });
    expect(forged.status).toBe(401);
  });
});
