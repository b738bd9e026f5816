import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { z } from 'zod';
import {
  admitMcpRequest,
  createVerifier,
  InvalidMcpMessage,
  mcpRefusal,
  nodeResourceMetadata,
  protectedResourceMetadata,
  protectedResourceMetadataUrl,
  VerifierUnavailable,
  type McpAuthInfo,
  type McpNodeRequest,
  type TollgateAuthExtra,
  type Verifier,
} from '../../packages/verifier/index.js';
import { fingerprint } from './fingerprint.js';
import { shown } from './transcript.js';

/**
 * The demo's CRM: a real MCP server (the official SDK's McpServer over Streamable HTTP, stateless)
 * whose every `tools/call` is held by @tollgate/verifier's MCP guard to the credential presented with
 * it: signature, issuer and audience (this server) via the JWKS, the tool name (the credential's
 * action), the order (its resource) and the arguments (its params digest), and revocation from
 * Tollgate's event stream. It serves the RFC 9728 document naming Tollgate as its authorization
 * server. Nothing here verifies a token by hand.
 */
export interface Crm {
  /** The MCP endpoint: the boundaries' tool, the credentials' `aud`. */
  url: string;
  /** Where its RFC 9728 protected-resource metadata is served. */
  metadataUrl: string;
  /** Each `tools/call` that reached the server, and what became of it. */
  calls: CrmCall[];
  /** The refunds it issued. */
  refunds: Refund[];
  /** The introspection requests its verifier made (the event stream should make them unnecessary). */
  introspections(): number;
  /**
   * Gives the CRM its resource_server API key: its verifier then follows Tollgate's event stream.
   * Until then every guarded call is refused (503): it cannot tell a revoked token.
   */
  protect(apiKey: string): Promise<void>;
  close(): Promise<void>;
}

export interface CrmCall {
  tool: string;
  args: unknown;
  /** The token's fingerprint, never the token. */
  token: string;
  /** 200 when the guard admitted it, else the refusal's status. */
  status: number;
  /** The refusal's OAuth error code. */
  error?: string;
  /** Whether the tool itself ran. */
  executed: boolean;
}

export interface Refund {
  id: string;
  order: string;
  amount: number;
}

export interface CrmOptions {
  /** Tollgate's base URL: its JWKS, event stream and introspection live there. */
  tollgate: string;
  /** The `iss` of its tokens (its metadata's `issuer`; the base URL unless behind a proxy). */
  issuer: string;
  say(text: string): void;
}

/** Totals in whole euros: the refund boundary's approval rule compares `params.amount` with 100. */
const ORDERS: Record<string, { status: string; total: number }> = {
  '1001': { status: 'shipped, arriving Tuesday', total: 49 },
  '1002': { status: 'delivered on Monday (an espresso machine)', total: 349 },
  '1003': { status: 'delivered last week (a laptop)', total: 899 },
};

/** The resource a call acts on, as its credential names it: the bot's SDK and the guard agree on it. */
export function orderResource(_tool: string, args: unknown): string | undefined {
  const order = (args as { order_id?: unknown } | undefined)?.order_id;
  return typeof order === 'string' ? `order/${order}` : undefined;
}

/** The server's stream of JSON-RPC bodies is small: a larger body is refused unread. */
const MAX_BODY_BYTES = 64 * 1024;
/** How long the verifier may take to connect to the event stream before the CRM gives up. */
const READY_TIMEOUT_MS = 10_000;

export async function startCrm(options: CrmOptions): Promise<Crm> {
  const calls: CrmCall[] = [];
  const refunds: Refund[] = [];
  let introspections = 0;
  let verifier: Verifier | undefined;
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`;
  const metadataUrl = protectedResourceMetadataUrl(url);
  const metadata = nodeResourceMetadata(
    protectedResourceMetadata({ resource: url, authorizationServers: [options.issuer], resourceName: 'Demo CRM' }),
  );

  const handle = async (request: McpNodeRequest, response: ServerResponse) => {
    if (metadata(request, response)) return;
    if (new URL(request.url ?? '/', url).pathname !== '/mcp') return send(response, 404, { error: 'not_found' });
    // Stateless: no session, so no GET stream to resume; the client goes on without one.
    if (request.method !== 'POST') return send(response, 405, { error: 'method_not_allowed' }, { allow: 'POST' });
    let body: unknown;
    let auth: McpAuthInfo | undefined;
    let call: CrmCall | undefined;
    try {
      body = await readJson(request);
      call = toolCallOf(body, request.headers.authorization);
      if (!verifier) throw new VerifierUnavailable('the CRM has no resource_server key yet');
      auth = await admitMcpRequest(verifier, { method: 'POST', url, headers: request.headers, body }, { resourceOf: orderResource });
    } catch (error) {
      const refusal = mcpRefusal(error, metadataUrl);
      const { error: code, error_description: why } = refusal.body as { error?: string; error_description?: string };
      if (call) {
        calls.push({ ...call, status: refusal.status, error: code ?? 'invalid_request' });
        options.say(`tools/call ${call.tool} ${shown(call.args)} with ${call.token} → ${refusal.status} ${code}: ${why}`);
      }
      return send(response, refusal.status, refusal.body, refusal.headers);
    }
    // The SDK's transport hands `auth` to the tool handlers as `extra.authInfo`.
    if (auth) request.auth = auth;
    if (call) {
      calls.push(call);
      const extra = auth?.extra as TollgateAuthExtra;
      options.say(
        `tools/call ${call.tool} ${shown(call.args)} with ${call.token}: signature and audience ok (JWKS), tool, order and params digest match, lease ${extra.leaseId} not revoked (event stream)`,
      );
    }
    const ran = () => {
      if (call) call.executed = true;
    };
    const mcp = crmServer({ refunds, ran, say: options.say });
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    response.on('close', () => {
      void transport.close();
      void mcp.close();
    });
    await mcp.connect(transport);
    await transport.handleRequest(request, response, body);
  };
  server.on('request', (request: IncomingMessage, response: ServerResponse) => {
    handle(request, response).catch(() => send(response, 500, { error: 'server_error' }));
  });

  return {
    url,
    metadataUrl,
    calls,
    refunds,
    introspections: () => introspections,
    async protect(apiKey) {
      const candidate = createVerifier({
        issuer: options.issuer,
        audience: url,
        jwksUri: `${options.tollgate}/.well-known/jwks.json`,
        revocation: {
          apiKey,
          url: options.tollgate,
          fetch: (input, init) => {
            if (String(input instanceof Request ? input.url : input).endsWith('/oauth2/introspect')) introspections++;
            return fetch(input, init);
          },
        },
      });
      const timedOut = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), READY_TIMEOUT_MS).unref());
      if ((await Promise.race([candidate.ready(), timedOut])) === 'timeout') {
        await candidate.close();
        throw new Error(`the CRM's verifier could not follow Tollgate's event stream within ${READY_TIMEOUT_MS / 1000} s`);
      }
      // A token's `iat` has whole seconds: one issued in the second the stream connected might
      // predate it, and the verifier would introspect it once. Start at the next whole second.
      await new Promise((resolve) => setTimeout(resolve, 1000 - (Date.now() % 1000)));
      verifier = candidate;
    },
    close: async () => {
      await verifier?.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

/** The CRM's tools, on a fresh McpServer per request (stateless Streamable HTTP, as the SDK's examples do). */
function crmServer(crm: { refunds: Refund[]; ran: () => void; say: (text: string) => void }): McpServer {
  const server = new McpServer({ name: 'demo-crm', version: '1.0.0' });
  const orderId = z.string().regex(/^[0-9]{4,10}$/);
  const answer = (text: string, isError = false) => ({ content: [{ type: 'text' as const, text }], ...(isError ? { isError } : {}) });

  server.registerTool('get_order', { description: 'The status of an order', inputSchema: { order_id: orderId } }, ({ order_id }) => {
    crm.ran();
    const order = ORDERS[order_id];
    if (!order) return answer(`no order ${order_id}`, true);
    crm.say(`get_order runs: order ${order_id} is ${order.status}`);
    return answer(`Order ${order_id} is ${order.status}.`);
  });

  server.registerTool(
    'refund_order',
    {
      description: 'Refund an amount (whole euros) of an order to the customer',
      inputSchema: { order_id: orderId, amount: z.number().int().positive() },
    },
    ({ order_id, amount }, extra) => {
      crm.ran();
      const order = ORDERS[order_id];
      if (!order) return answer(`no order ${order_id}`, true);
      const refunded = crm.refunds.filter((refund) => refund.order === order_id).reduce((sum, refund) => sum + refund.amount, 0);
      if (amount > order.total - refunded) return answer(`order ${order_id} has only ${order.total - refunded} EUR left to refund`, true);
      const refund = { id: `R-${order_id}-${crm.refunds.length + 1}`, order: order_id, amount };
      crm.refunds.push(refund);
      const customer = (extra.authInfo?.extra as TollgateAuthExtra | undefined)?.subject;
      crm.say(`refund_order runs: refund ${refund.id} of ${amount} EUR issued for order ${order_id} (customer ${customer})`);
      return answer(`Refund ${refund.id} of ${amount} EUR issued for order ${order_id}.`);
    },
  );
  return server;
}

/** The tools/call in a body (what the transcript and the ledger name), with the fingerprint of its token. */
function toolCallOf(body: unknown, authorization: string | undefined): CrmCall | undefined {
  const message = body as { method?: unknown; params?: { name?: unknown; arguments?: unknown } } | null;
  if (message?.method !== 'tools/call' || typeof message.params?.name !== 'string') return undefined;
  const token = authorization?.split(' ')[1];
  return {
    tool: message.params.name,
    args: message.params.arguments,
    token: token ? `token ${fingerprint(token)}` : 'no credential',
    status: 200,
    executed: false,
  };
}

async function readJson(request: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new InvalidMcpMessage(-32600, `the body is larger than ${MAX_BODY_BYTES} bytes`, 413);
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    throw new InvalidMcpMessage(-32700, 'the body is not JSON');
  }
}

function send(response: ServerResponse, status: number, body: unknown, headers: Record<string, string | string[]> = {}): void {
  if (response.headersSent) return;
  response.writeHead(status, { ...headers, 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(body));
}
