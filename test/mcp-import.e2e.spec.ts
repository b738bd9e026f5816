import { execFile, spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { startBroker, type TestBroker } from './support/broker.js';
import { call } from './support/http.js';
import { asAdmin, registerBot } from './support/scenario.js';

/**
 * `tollgate mcp import` end to end: the real binary (compiled as `npm run build` does) lists the
 * tools of a real MCP server (the official SDK's McpServer over Streamable HTTP, on a loopback
 * port) with the official client, and writes the boundary into a real broker; re-running it plans
 * only what changed.
 */

const ROOT = resolve(import.meta.dirname, '..');
const BIN = join(ROOT, 'apps/cli/bin/tollgate.mjs');

let broker: TestBroker;
let admin: ReturnType<typeof asAdmin>;
let mcp: Server;
let mcpUrl: string;

/** The tools the MCP server offers: the test changes them between imports. */
const tools: Record<string, { description: string; inputSchema: z.ZodRawShape }> = {
  'orders.lookup': { description: 'Look up an order', inputSchema: { order_id: z.string().max(64) } },
  'refund.create': {
    description: 'Refund an order',
    inputSchema: { order_id: z.string(), amount: z.number().positive().max(1000), currency: z.enum(['EUR', 'USD']).optional() },
  },
};

/** A stateless Streamable HTTP MCP server: a fresh McpServer and transport per request, as the SDK's examples do. */
async function startMcpServer(): Promise<void> {
  mcp = createServer((request, response) => {
    if (request.method !== 'POST') {
      response.writeHead(405, { allow: 'POST' }).end();
      return;
    }
    const server = new McpServer({ name: 'acme-support', version: '1.0.0' });
    for (const [name, tool] of Object.entries(tools)) {
      server.registerTool(name, tool, () => ({ content: [{ type: 'text', text: 'ok' }] }));
    }
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
    response.on('close', () => {
      void transport.close();
      void server.close();
    });
    void server.connect(transport).then(() => transport.handleRequest(request, response));
  });
  await new Promise<void>((done) => mcp.listen(0, '127.0.0.1', done));
  mcpUrl = `http://127.0.0.1:${(mcp.address() as AddressInfo).port}/mcp`;
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function tollgate(args: string[]): Promise<Run> {
  const env = { PATH: process.env.PATH ?? '', TOLLGATE_URL: broker.url, TOLLGATE_KEY: broker.adminKey };
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [BIN, ...args], { env, cwd: ROOT });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.on('error', fail);
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

function ok(run: Run): string {
  expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(0);
  return run.stdout;
}

beforeAll(async () => {
  const build = promisify(execFile)(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'apps/cli')], {
    cwd: ROOT,
  });
  broker = await startBroker();
  admin = asAdmin(broker);
  await startMcpServer();
  await build;
}, 120_000);
afterAll(async () => {
  await broker?.close();
  await new Promise((done) => mcp?.close(done));
});

describe('tollgate mcp import', () => {
  it('plans on --dry-run, writes the boundary (server URL as tool, tools as actions), then has nothing to change', async () => {
    const dry = ok(await tollgate(['mcp', 'import', mcpUrl, '--boundary', 'acme-support', '--intent', 'refund_request', '--dry-run']));
    const lines = dry.trim().split('\n');
    expect(lines[0]).toBe('+ create boundary/acme-support');
    expect(lines[1]).toMatch(/^ {4}\+ action orders\.lookup {2}params_schema \{"/);
    expect(lines[2]).toMatch(/^ {4}\+ action refund\.create {2}params_schema \{"/);
    expect(lines.at(-1)).toBe('Dry run: 1 change(s) planned, nothing applied.');
    // The schemas shown are the tools' own input schemas.
    const refundSchema = JSON.parse(lines[2]!.replace(/^.*params_schema /, ''));
    expect(refundSchema).toMatchObject({
      type: 'object',
      properties: { order_id: { type: 'string' }, amount: { type: 'number', maximum: 1000 }, currency: { enum: ['EUR', 'USD'] } },
      required: ['order_id', 'amount'],
    });
    expect((await admin('GET', '/v1/admin/boundaries/acme-support')).status).toBe(404);

    const applied = ok(await tollgate(['mcp', 'import', mcpUrl, '--boundary', 'acme-support', '--intent', 'refund_request']));
    expect(applied).toMatch(/^\+ create boundary\/acme-support\n[\s\S]*Applied 1 change\(s\)\.\n$/);
    const boundary = (await admin('GET', '/v1/admin/boundaries/acme-support')).body;
    expect(boundary).toMatchObject({
      tool: mcpUrl,
      actions: ['orders.lookup', 'refund.create'],
      intents: ['refund_request'],
      version: 1,
      credential: { kind: 'jwt' },
    });
    // Where the broker's boundaries take params schemas, they are written too.
    if ('params_schemas' in boundary) expect(boundary.params_schemas['refund.create']).toEqual(refundSchema);

    const again = ok(await tollgate(['mcp', 'import', mcpUrl, '--boundary', 'acme-support']));
    expect(again).toMatch(/No changes\.\n$/);
    expect(again).not.toMatch(/[+~-] action/);
    expect((await admin('GET', '/v1/admin/boundaries/acme-support')).body.version).toBe(1);
  });

  it('after the server changes its tools, changes only what changed and keeps what an admin set', async () => {
    const put = await admin('PUT', '/v1/admin/boundaries/acme-support', {
      ...pick((await admin('GET', '/v1/admin/boundaries/acme-support')).body),
      sensitivity: 'high',
      drift_threshold: 4,
    });
    expect(put.status).toBe(200);
    delete tools['orders.lookup'];
    tools['orders.cancel'] = { description: 'Cancel an order', inputSchema: { order_id: z.string(), reason: z.string().optional() } };

    const json = ok(await tollgate(['mcp', 'import', mcpUrl, '--boundary', 'acme-support', '--dry-run', '--json']));
    const plan = JSON.parse(json);
    expect(plan.changes).toEqual([
      {
        action: 'change',
        kind: 'boundary',
        id: 'acme-support',
        fields: expect.arrayContaining([
          { field: 'actions', from: ['orders.lookup', 'refund.create'], to: ['refund.create', 'orders.cancel'] },
        ]),
      },
    ]);
    expect(plan.actions.map((a: { change: string; name: string }) => `${a.change} ${a.name}`)).toEqual([
      'same refund.create',
      'add orders.cancel',
      'remove orders.lookup',
    ]);
    expect(plan.applied).toEqual([]);

    const text = ok(await tollgate(['mcp', 'import', mcpUrl, '--boundary', 'acme-support']));
    expect(text).toMatch(
      /^~ change boundary\/acme-support \(actions: \["orders.lookup","refund.create"\] → \["refund.create","orders.cancel"\]/,
    );
    expect(text).toMatch(/\n {4}\+ action orders\.cancel {2}params_schema /);
    expect(text).toMatch(/\n {4}- action orders\.lookup\n/);
    const boundary = (await admin('GET', '/v1/admin/boundaries/acme-support')).body;
    expect(boundary).toMatchObject({
      version: 3,
      tool: mcpUrl,
      actions: ['refund.create', 'orders.cancel'],
      intents: ['refund_request'],
      sensitivity: 'high',
      drift_threshold: 4,
    });
    expect(ok(await tollgate(['mcp', 'import', mcpUrl, '--boundary', 'acme-support']))).toMatch(/No changes\.\n$/);
  });

  it('refuses what it cannot write, before writing anything', async () => {
    const missing = await tollgate(['mcp', 'import', mcpUrl, '--intent', 'x']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/--boundary ID is required/);
    const noIntent = await tollgate(['mcp', 'import', mcpUrl, '--boundary', 'fresh']);
    expect(noIntent.code).toBe(2);
    expect(noIntent.stderr).toMatch(/give its intents with --intent/);
    // A valid MCP tool name, but not a valid action (an action starts with a lower-case letter or a digit).
    tools['Refund'] = { description: 'not an action name', inputSchema: {} };
    try {
      const bad = await tollgate(['mcp', 'import', mcpUrl, '--boundary', 'fresh', '--intent', 'x']);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toMatch(/boundary fresh: actions\.2 \(tool "Refund"\): must match/);
    } finally {
      delete tools['Refund'];
    }
    expect((await admin('GET', '/v1/admin/boundaries/fresh')).status).toBe(404);
    const unreachable = await tollgate(['mcp', 'import', 'http://127.0.0.1:1/mcp', '--boundary', 'fresh', '--intent', 'x']);
    expect(unreachable.code).toBe(3);
    expect(unreachable.stderr).toMatch(/cannot list the tools of the MCP server/);
    const fragment = await tollgate(['mcp', 'import', `${mcpUrl}#x`, '--boundary', 'fresh', '--intent', 'x']);
    expect(fragment.code).toBe(2);
  });

  it('the imported boundary serves credentials for the MCP server named as resource (RFC 8707), with it as aud', async () => {
    const bot = await registerBot(broker);
    const taskId = await bot.openTask('refund_request');
    const exchange = (resource: string) =>
      bot.token().then((subjectToken) =>
        call(broker.url, 'POST', '/oauth2/token', {
          form: {
            grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
            subject_token: subjectToken,
            subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
            resource,
            authorization_details: JSON.stringify([
              {
                type: 'tool_call',
                task_id: taskId,
                boundary: 'acme-support',
                action: 'refund.create',
                params: { order_id: 'o-7', amount: 49 },
              },
            ]),
          },
        }),
      );
    const issued = await exchange(mcpUrl);
    expect(issued.status, JSON.stringify(issued.body)).toBe(200);
    expect(decodeJwt(issued.body.access_token).aud).toBe(mcpUrl);
    const elsewhere = await exchange('http://127.0.0.1:1/mcp');
    expect(elsewhere.status).toBe(400);
    expect(elsewhere.body).toMatchObject({ error: 'invalid_target', reasons: ['audience_mismatch'] });
  });
});

/** A boundary as its PUT body (the fields PUT takes, nulls left to their defaults). */
function pick(boundary: Record<string, unknown>): Record<string, unknown> {
  const { id: _id, version: _version, created_at: _created, updated_at: _updated, ...rest } = boundary;
  return Object.fromEntries(Object.entries(rest).filter(([, value]) => value !== null));
}
