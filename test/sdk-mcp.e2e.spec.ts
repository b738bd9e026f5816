import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { calculateJwkThumbprint } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { createVerifier, VerifierError, type AccessTokenClaims, type Verifier } from '../packages/verifier/index.js';
import { generateDpopKey, mcpFetch, TollgateClient, type DpopKey, type McpFetchOptions, type Task } from '../libs/sdk/index.js';
import { freePort, type TestBroker } from './support/broker.js';
import { asAdmin, putBoundary, startWithBot, type Bot } from './support/scenario.js';

/**
 * The bot side of MCP (issue 14, part 4) end to end: the official MCP client over Streamable HTTP,
 * with the SDK's mcpFetch, calls a real official McpServer whose tools/call requests are checked by
 * @tollgate/verifier (the token, its DPoP proof, and checkCall of the tool name and arguments)
 * against credentials from a real broker; leases are read back from the broker's task view.
 */

let broker: TestBroker;
let bot: Bot;
let mcp: Server;
let mcpUrl: string;
let verifier: Verifier;
let responseMode: 'json' | 'sse' = 'json';

/** What the MCP server saw: each tools/call the verifier let through, refused, and each tool run. */
const guarded: Array<{ tool: string; claims: AccessTokenClaims; boundTo: string | undefined; scheme: string | undefined }> = [];
const refusedAtServer: Array<{ tool: string; error: string }> = [];
const toolRuns: Array<{ tool: string; args: unknown }> = [];
/** Resolved when the slow tool has started streaming. */
let watchStarted: () => void = () => {};

const clients: Client[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => client.close()));
  guarded.length = 0;
  refusedAtServer.length = 0;
  toolRuns.length = 0;
  responseMode = 'json';
});

async function readBody(request: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return chunks.length === 0 ? undefined : JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

function toolCallOf(body: unknown): { name: string; arguments?: Record<string, unknown> } | undefined {
  const message = body as { method?: unknown; params?: { name?: unknown; arguments?: Record<string, unknown> } } | undefined;
  return message?.method === 'tools/call' && typeof message.params?.name === 'string'
    ? { name: message.params.name, arguments: message.params.arguments }
    : undefined;
}

/** A fresh McpServer with the support tools (stateless, as the SDK's examples do). */
function supportServer(): McpServer {
  const server = new McpServer({ name: 'acme-support', version: '1.0.0' }, { capabilities: { logging: {} } });
  server.registerTool(
    'refund.create',
    { description: 'Refund an order', inputSchema: { order_id: z.string(), amount: z.number().int() } },
    (args) => {
      toolRuns.push({ tool: 'refund.create', args });
      return { content: [{ type: 'text', text: `refunded ${args.amount} on ${args.order_id}` }] };
    },
  );
  server.registerTool('orders.lookup', { description: 'Look up an order', inputSchema: { order_id: z.string() } }, (args) => {
    toolRuns.push({ tool: 'orders.lookup', args });
    return { content: [{ type: 'text', text: `order ${args.order_id}: shipped` }] };
  });
  // Streams a log message, then works until cancelled (or 10 s): the client abandons it.
  server.registerTool('orders.watch', { description: 'Watch an order', inputSchema: { order_id: z.string() } }, async (args, extra) => {
    toolRuns.push({ tool: 'orders.watch', args });
    await extra.sendNotification({ method: 'notifications/message', params: { level: 'info', data: 'watching' } });
    watchStarted();
    await new Promise((resolve) => {
      extra.signal.addEventListener('abort', resolve);
      setTimeout(resolve, 10_000).unref();
    });
    return { content: [{ type: 'text', text: 'done' }] };
  });
  return server;
}

/** The MCP server, guarded: each tools/call POST is verified and its tool name and arguments checked before the MCP SDK sees it. */
async function startMcpServer(): Promise<void> {
  mcp = createServer((request, response) => {
    void (async () => {
      if (request.method !== 'POST') {
        response.writeHead(405, { allow: 'POST' }).end();
        return;
      }
      const body = await readBody(request);
      const call = toolCallOf(body);
      if (call) {
        try {
          const verified = await verifier.verifyRequest({ method: 'POST', url: mcpUrl, headers: request.headers });
          verified.checkCall({ action: call.name, params: call.arguments });
          const scheme = request.headers.authorization?.split(' ')[0];
          guarded.push({ tool: call.name, claims: verified.claims, boundTo: verified.boundTo, scheme });
        } catch (error) {
          if (!(error instanceof VerifierError)) throw error;
          refusedAtServer.push({ tool: call.name, error: error.code });
          response.writeHead(error.status, { 'content-type': 'application/json' }).end(JSON.stringify({ error: error.code }));
          return;
        }
      }
      const server = supportServer();
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: responseMode === 'json' });
      response.on('close', () => {
        void transport.close();
        void server.close();
      });
      await server.connect(transport);
      await transport.handleRequest(request, response, body);
    })().catch((error: unknown) => {
      if (!response.headersSent) response.writeHead(500).end(String(error));
    });
  });
  await new Promise<void>((done) => mcp.listen(0, '127.0.0.1', done));
  mcpUrl = `http://127.0.0.1:${(mcp.address() as AddressInfo).port}/mcp`;
}

function tollgate(options: { dpop?: DpopKey; url?: string } = {}): TollgateClient {
  return new TollgateClient({
    url: options.url ?? broker.url,
    tokenSource: { workloadId: bot.id, privateKey: bot.key.privateKey, kid: bot.key.kid, alg: bot.key.alg },
    dpop: options.dpop,
    retry: false,
  });
}

async function openTask(client = tollgate()): Promise<Task> {
  return client.openTask({ intent: 'refund_request', subject: 'customer-42' });
}

/** The official MCP client, connected through mcpFetch. */
async function mcpClient(task: Task, options: Partial<McpFetchOptions> = {}): Promise<Client> {
  const client = new Client({ name: 'support-bot', version: '1.0.0' });
  clients.push(client);
  await client.connect(
    new StreamableHTTPClientTransport(new URL(mcpUrl), { fetch: mcpFetch(task, { boundary: 'acme-support', ...options }) }),
  );
  return client;
}

type ToolResult = { content: Array<{ type: string; text?: string }>; isError?: boolean };

async function callTool(client: Client, name: string, args: Record<string, unknown>): Promise<ToolResult> {
  return (await client.callTool({ name, arguments: args })) as ToolResult;
}

beforeAll(async () => {
  ({ broker, bot } = await startWithBot());
  await startMcpServer();
  await putBoundary(broker, 'acme-support', {
    tool: mcpUrl,
    actions: ['refund.create', 'orders.lookup', 'orders.watch'],
    intents: ['refund_request'],
    params_schemas: {
      'refund.create': {
        type: 'object',
        properties: { order_id: { type: 'string' }, amount: { type: 'integer', minimum: 1 } },
        required: ['order_id', 'amount'],
        additionalProperties: false,
      },
    },
    policy: `permit(principal, action == Action::"refund.create", resource) when { context.params.amount <= 100 };
permit(principal, action in [Action::"orders.lookup", Action::"orders.watch"], resource);`,
    approval: { when: 'action == Action::"refund.create" && context.params.amount > 50' },
  });
  const metadata = (await (await fetch(`${broker.url}/.well-known/oauth-authorization-server`)).json()) as { issuer: string };
  verifier = createVerifier({ issuer: metadata.issuer, audience: mcpUrl });
}, 60_000);

afterAll(async () => {
  await verifier?.close();
  await new Promise((done) => mcp?.close(done));
  mcp?.closeAllConnections();
  await broker?.close();
});

describe('the official MCP client through mcpFetch', () => {
  it('without it, the guarded server refuses the call: the guard is real', async () => {
    const client = new Client({ name: 'support-bot', version: '1.0.0' });
    clients.push(client);
    await client.connect(new StreamableHTTPClientTransport(new URL(mcpUrl)));
    // The handshake and listing go through without a credential; the call does not.
    expect((await client.listTools()).tools.map((tool) => tool.name)).toContain('refund.create');
    await expect(client.callTool({ name: 'orders.lookup', arguments: { order_id: 'o-1' } })).rejects.toThrow(
      /Error POSTing to endpoint: \{"error":"invalid_request"\}/,
    );
    expect(refusedAtServer).toEqual([{ tool: 'orders.lookup', error: 'invalid_request' }]);
    expect(toolRuns).toEqual([]);
  });

  it('a permitted call gets its result; exactly one lease, for that call, issued and revoked right after', async () => {
    const task = await openTask();
    const client = await mcpClient(task);
    expect((await client.listTools()).tools).toHaveLength(3);
    expect((await task.get()).leases).toEqual([]); // listing needs no credential

    const result = await callTool(client, 'refund.create', { order_id: 'o-1', amount: 40 });
    expect(result).toEqual({ content: [{ type: 'text', text: 'refunded 40 on o-1' }] });
    expect(toolRuns).toEqual([{ tool: 'refund.create', args: { order_id: 'o-1', amount: 40 } }]);
    expect(guarded).toHaveLength(1);
    expect(guarded[0]!.claims).toMatchObject({ aud: mcpUrl, task_id: task.id });
    expect(guarded[0]!.claims.authorization_details![0]).toMatchObject({
      tool: mcpUrl,
      action: 'refund.create',
      params: { order_id: 'o-1', amount: 40 },
    });
    expect(guarded[0]!.boundTo).toBeUndefined();
    // A JSON response is read to its end before the result is used: the lease is already revoked.
    const { leases } = await task.get();
    expect(leases).toHaveLength(1);
    expect(leases[0]).toMatchObject({ action: 'refund.create', state: 'revoked', revokedAt: expect.any(Date) });
    expect(leases[0]!.revokedAt!.getTime()).toBeLessThan(Date.now());

    // A second call is a second credential: one lease per call.
    await callTool(client, 'orders.lookup', { order_id: 'o-1' });
    expect((await task.get()).leases.map((lease) => `${lease.action} ${lease.state}`).sort()).toEqual([
      'orders.lookup revoked',
      'refund.create revoked',
    ]);
  });

  it('a call Cedar forbids resolves as a tool error with the reasons; nothing reaches the tool, no lease', async () => {
    const task = await openTask();
    const client = await mcpClient(task);
    const result = await callTool(client, 'refund.create', { order_id: 'o-1', amount: 5000 });
    expect(result.isError).toBe(true);
    expect(result.content).toEqual([
      { type: 'text', text: expect.stringMatching(/^Tollgate refused this call: policy_no_permit \(.*; decision [0-9a-f-]{36}\)$/) },
    ]);
    // Params the tool's schema refuses are refused the same way.
    const invalid = await callTool(client, 'refund.create', { order_id: 'o-1', amount: 'lots' });
    expect(invalid.content[0]!.text).toMatch(/^Tollgate refused this call: invalid_params \(/);
    expect(guarded).toEqual([]);
    expect(refusedAtServer).toEqual([]);
    expect(toolRuns).toEqual([]);
    expect((await task.get()).leases).toEqual([]);
  });

  it('a call that needs approval: the approval id in the tool error, and the same call succeeds once a reviewer approved', async () => {
    const task = await openTask();
    const client = await mcpClient(task);
    const pending = await callTool(client, 'refund.create', { order_id: 'o-2', amount: 80 });
    expect(pending.isError).toBe(true);
    const approvalId = /approval ([0-9a-f-]{36})/.exec(pending.content[0]!.text!)?.[1];
    expect(approvalId).toBeDefined();
    expect(toolRuns).toEqual([]);

    const reviewer = (await asAdmin(broker)('POST', '/v1/admin/api-keys', { role: 'reviewer', label: 'on-call' })).body as { key: string };
    const approved = await fetch(`${broker.url}/v1/approvals/${approvalId}/approve`, {
      method: 'POST',
      headers: { authorization: `Bearer ${reviewer.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ reason: 'checked with the customer' }),
    });
    expect(approved.status).toBe(200);
    expect(await callTool(client, 'refund.create', { order_id: 'o-2', amount: 80 })).toEqual({
      content: [{ type: 'text', text: 'refunded 80 on o-2' }],
    });
    expect(toolRuns).toHaveLength(1);
  });

  it('with a DPoP client, the server sees a DPoP-bound token (cnf.jkt of its key) under the DPoP scheme with a valid proof', async () => {
    const dpop = await generateDpopKey('ES256');
    const task = await openTask(tollgate({ dpop }));
    const client = await mcpClient(task);
    await callTool(client, 'orders.lookup', { order_id: 'o-3' });
    await callTool(client, 'orders.lookup', { order_id: 'o-3' }); // a fresh proof each time: no replay
    const jkt = await calculateJwkThumbprint(dpop.publicJwk);
    expect(guarded.map((seen) => [seen.scheme, seen.boundTo, seen.claims.cnf?.jkt])).toEqual([
      ['DPoP', jkt, jkt],
      ['DPoP', jkt, jkt],
    ]);
    expect(toolRuns).toHaveLength(2);
  });

  it('an SSE response: the result arrives and the lease is revoked when the stream ends', async () => {
    responseMode = 'sse';
    const task = await openTask();
    const client = await mcpClient(task);
    expect(await callTool(client, 'orders.lookup', { order_id: 'o-4' })).toEqual({
      content: [{ type: 'text', text: 'order o-4: shipped' }],
    });
    await expect.poll(async () => (await task.get()).leases.map((lease) => lease.state), { timeout: 5_000 }).toEqual(['revoked']);
  });

  it('the caller abandons a streamed response: the lease is still revoked, long before the tool would end', async () => {
    responseMode = 'sse';
    const task = await openTask();
    const client = await mcpClient(task);
    const started = new Promise<void>((resolve) => (watchStarted = resolve));
    const call = client.callTool({ name: 'orders.watch', arguments: { order_id: 'o-5' } }).catch((error: unknown) => error);
    await started;
    expect((await task.get()).leases.map((lease) => lease.state)).toEqual(['active']);
    const abandoned = Date.now();
    await client.close();
    await expect.poll(async () => (await task.get()).leases.map((lease) => lease.state), { timeout: 5_000 }).toEqual(['revoked']);
    expect(Date.now() - abandoned).toBeLessThan(5_000);
    await call;
  });

  it('the caller cancels a call whose stream the server keeps open: the stream is cut and the lease revoked at once', async () => {
    responseMode = 'sse';
    const task = await openTask();
    const client = await mcpClient(task);
    const started = new Promise<void>((resolve) => (watchStarted = resolve));
    const controller = new AbortController();
    const call = client.callTool({ name: 'orders.watch', arguments: { order_id: 'o-5' } }, undefined, { signal: controller.signal });
    await started;
    const cancelled = Date.now();
    controller.abort();
    await expect(call).rejects.toThrow(/abort/i);
    // The official server answers nothing to a cancelled request and keeps its stream open (here 10 s).
    await expect.poll(async () => (await task.get()).leases.map((lease) => lease.state), { timeout: 5_000 }).toEqual(['revoked']);
    expect(Date.now() - cancelled).toBeLessThan(5_000);
  });

  it('Tollgate down: the call is a tool error saying so, and the tool is not called', async () => {
    const task = await openTask();
    const down = tollgate({ url: `http://127.0.0.1:${await freePort()}` }).task(task.id);
    const client = await mcpClient(down);
    const result = await callTool(client, 'refund.create', { order_id: 'o-6', amount: 10 });
    expect(result).toEqual({
      content: [
        {
          type: 'text',
          text: expect.stringMatching(/^Tollgate refused this call: Tollgate is unavailable \(.*\); the call was not sent to the tool\.$/),
        },
      ],
      isError: true,
    });
    expect(guarded).toEqual([]);
    expect(refusedAtServer).toEqual([]);
    expect(toolRuns).toEqual([]);
  });

  it('the token never reaches a log, the tool error or the denial hook', async () => {
    const written: string[] = [];
    const spies = (['log', 'info', 'warn', 'error', 'debug'] as const).map((level) =>
      vi.spyOn(console, level).mockImplementation((...args: unknown[]) => void written.push(args.map(String).join(' '))),
    );
    const onWarning = (warning: Error) => written.push(warning.message);
    process.on('warning', onWarning);
    try {
      const task = await openTask();
      const denials: string[] = [];
      const client = await mcpClient(task, {
        onDenied: (denial) => denials.push(JSON.stringify({ ...denial, error: { ...denial.error } })),
      });
      await callTool(client, 'orders.lookup', { order_id: 'o-7' });
      const refused = await callTool(client, 'refund.create', { order_id: 'o-7', amount: 5000 });
      expect(guarded).toHaveLength(1);
      expect(denials).toHaveLength(1);
      expect([...written, ...denials, JSON.stringify(refused)].join('\n')).not.toMatch(/eyJ[\w-]+\.eyJ/); // no JWT anywhere
    } finally {
      spies.forEach((spy) => spy.mockRestore());
      process.off('warning', onWarning);
    }
  });
});
