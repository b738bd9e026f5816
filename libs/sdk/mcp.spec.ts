import { decodeJwt, generateKeyPair } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { TollgateClient } from './client.js';
import { AccessDenied, ApprovalPending, TollgateUnavailable } from './errors.js';
import { MCP_REFUSAL_PREFIX, mcpFetch, type McpDenial, type McpFetchOptions } from './mcp.js';
import { CREDENTIAL, scriptedServer, TASK_ID, type Step } from './scripted-server.fixture.js';

/**
 * mcpFetch against a scripted Tollgate (a real HTTP server playing the broker's answers) and an MCP
 * server played by the fetch it is given, so each test decides when the response body ends. The
 * official client and server end to end are in test/sdk-mcp.e2e.spec.ts.
 */

const MCP_URL = 'http://mcp.acme.test/mcp';
const servers: { close(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => server.close()));
});

const issued: Step = { status: 201, body: CREDENTIAL };
const revoked: Step = { status: 200, body: {} };

interface Sent {
  url: string;
  init: RequestInit | undefined;
  headers: Headers;
}

/** The MCP server side: records each request and answers with `answer` (default a JSON result). */
function mcpServer(answer: (sent: Sent) => Response | Promise<Response> = () => jsonResult()) {
  const sent: Sent[] = [];
  const fetcher: typeof fetch = async (input, init) => {
    const request = { url: String(input), init, headers: new Headers(init?.headers) };
    sent.push(request);
    return answer(request);
  };
  return { sent, fetch: fetcher };
}

interface Answer {
  jsonrpc: '2.0';
  id: string | number;
  result: { content: { type: string; text: string }[]; isError?: boolean };
  error?: { code: number; message: string };
}

/** A JSON-RPC answer (or a batch of them) read from a response. */
async function answer<T = Answer>(response: Response | Promise<Response>): Promise<T> {
  return (await (await response).json()) as T;
}

function jsonResult(id: number | string = 1): Response {
  return new Response(JSON.stringify({ jsonrpc: '2.0', id, result: { content: [{ type: 'text', text: 'refunded' }] } }), {
    status: 200,
    headers: { 'content-type': 'application/json' },
  });
}

async function setUp(steps: Step[], options: Partial<McpFetchOptions> = {}, client: { dpop?: true } = {}) {
  const tollgate = await scriptedServer(steps);
  servers.push(tollgate);
  const { privateKey } = await generateKeyPair('EdDSA');
  const sdk = new TollgateClient({
    url: tollgate.url,
    tokenSource: { workloadId: 'chatbot', privateKey, kid: 'k1', alg: 'EdDSA' },
    retry: false,
    dpop: client.dpop,
  });
  const mcp = options.fetch ? undefined : mcpServer();
  const fetcher = mcpFetch(sdk.task(TASK_ID), { boundary: 'acme-support', fetch: mcp?.fetch, ...options });
  const credentialRequests = () => tollgate.seen.filter((seen) => seen.url.endsWith('/credentials'));
  const revocations = () =>
    tollgate.seen.filter((seen) => seen.url === '/oauth2/revoke').map((seen) => new URLSearchParams(seen.body).get('token'));
  return { tollgate, fetcher, mcp, credentialRequests, revocations };
}

function post(message: unknown, extra: RequestInit = {}): RequestInit {
  return {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify(message),
    ...extra,
  };
}

const refund = (args: Record<string, unknown> = { order_id: 'o-1', amount: 40 }, id: number | string = 1) => ({
  jsonrpc: '2.0',
  id,
  method: 'tools/call',
  params: { name: 'refund.create', arguments: args },
});

describe('what goes out without a credential', () => {
  it('passes the handshake, listing, notifications and the GET stream through unchanged, asking Tollgate nothing', async () => {
    const { fetcher, mcp, tollgate } = await setUp([issued]);
    const initialize = { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {} } };
    await fetcher(MCP_URL, post(initialize));
    await fetcher(MCP_URL, post({ jsonrpc: '2.0', method: 'notifications/initialized' }));
    await fetcher(MCP_URL, post({ jsonrpc: '2.0', id: 2, method: 'tools/list' }));
    await fetcher(MCP_URL, { method: 'GET', headers: { accept: 'text/event-stream' } });
    // A batch without a tools/call, and a body that is not JSON-RPC at all.
    await fetcher(MCP_URL, post([{ jsonrpc: '2.0', id: 3, method: 'tools/list' }]));
    await fetcher(MCP_URL, { method: 'POST', body: 'not json' });
    expect(mcp!.sent).toHaveLength(6);
    expect(mcp!.sent.map((request) => request.headers.get('authorization'))).toEqual(Array(6).fill(null));
    expect(mcp!.sent[0]!.init?.body).toBe(JSON.stringify(initialize));
    expect(tollgate.seen).toEqual([]);
  });

  it('refuses a tools/call in a batch without sending anything: a tool error per call, a JSON-RPC error per other request', async () => {
    const { fetcher, mcp, tollgate } = await setUp([issued]);
    const response = await fetcher(
      MCP_URL,
      post([refund(undefined, 'a'), { jsonrpc: '2.0', id: 'b', method: 'tools/list' }, { jsonrpc: '2.0', method: 'notifications/x' }]),
    );
    expect(response.status).toBe(200);
    const answers = await answer<Answer[]>(response);
    expect(answers).toHaveLength(2);
    expect(answers[0]).toMatchObject({
      id: 'a',
      result: { isError: true, content: [{ type: 'text', text: expect.stringContaining('batch') }] },
    });
    expect(answers[0].result.content[0].text.startsWith(MCP_REFUSAL_PREFIX)).toBe(true);
    expect(answers[1]).toMatchObject({ id: 'b', error: { code: -32600 } });
    expect(mcp!.sent).toEqual([]);
    expect(tollgate.seen).toEqual([]);
  });
});

describe('a permitted tools/call', () => {
  it('asks for exactly that call, sends the token on that one request, and revokes it once the body is read', async () => {
    let finish!: () => void;
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('{"jsonrpc":"2.0","id":1,'));
        finish = () => {
          controller.enqueue(new TextEncoder().encode('"result":{"content":[]}}'));
          controller.close();
        };
      },
    });
    const mcp = mcpServer(
      () => new Response(body, { status: 200, headers: { 'content-type': 'application/json', 'mcp-session-id': 's-1' } }),
    );
    const { fetcher, credentialRequests, revocations } = await setUp([issued, revoked], {
      fetch: mcp.fetch,
      resource: (tool, args) => `order/${String(args?.order_id)}`,
      ttl: 30,
    });
    const response = await fetcher(new URL(MCP_URL), post(refund()));
    expect(JSON.parse(credentialRequests()[0]!.body)).toEqual({
      boundary: 'acme-support',
      action: 'refund.create',
      resource: 'order/o-1',
      params: { order_id: 'o-1', amount: 40 },
      ttl: 30,
    });
    expect(mcp.sent).toHaveLength(1);
    expect(mcp.sent[0]!.headers.get('authorization')).toBe(`Bearer ${CREDENTIAL.credential.access_token}`);
    expect(mcp.sent[0]!.headers.get('content-type')).toBe('application/json');
    expect(mcp.sent[0]!.init?.body).toBe(JSON.stringify(refund()));
    expect(response.headers.get('mcp-session-id')).toBe('s-1');
    // The response is still being read: the credential is live.
    expect(revocations()).toEqual([]);
    const text = response.text();
    finish();
    expect(JSON.parse(await text)).toEqual({ jsonrpc: '2.0', id: 1, result: { content: [] } });
    // Revoked before the end of the body reached the reader.
    expect(revocations()).toEqual([CREDENTIAL.credential.access_token]);
  });

  it('asks without params when the call has no arguments (the token then names "no arguments")', async () => {
    const { fetcher, credentialRequests } = await setUp([issued, revoked]);
    await (await fetcher(MCP_URL, post({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'orders.list' } }))).text();
    expect(JSON.parse(credentialRequests()[0]!.body)).toEqual({ boundary: 'acme-support', action: 'orders.list' });
  });

  it('revokes when the reader cancels a streamed response, when the request is aborted, and when the fetch fails', async () => {
    const endless = () =>
      new Response(new ReadableStream<Uint8Array>({ pull: (controller) => controller.enqueue(new TextEncoder().encode(': ping\n\n')) }), {
        status: 200,
        headers: { 'content-type': 'text/event-stream' },
      });
    const cancelled = await setUp([issued, revoked], { fetch: mcpServer(endless).fetch });
    const response = await cancelled.fetcher(MCP_URL, post(refund()));
    const reader = response.body!.getReader();
    await reader.read();
    expect(cancelled.revocations()).toEqual([]);
    await reader.cancel();
    expect(cancelled.revocations()).toEqual([CREDENTIAL.credential.access_token]);

    const aborted = await setUp([issued, revoked], { fetch: mcpServer(endless).fetch });
    const controller = new AbortController();
    await aborted.fetcher(MCP_URL, post(refund(), { signal: controller.signal }));
    controller.abort();
    await expect.poll(() => aborted.revocations()).toEqual([CREDENTIAL.credential.access_token]);

    const failing = await setUp([issued, revoked], {
      fetch: async () => {
        throw new TypeError('fetch failed');
      },
    });
    await expect(failing.fetcher(MCP_URL, post(refund()))).rejects.toThrow('fetch failed');
    expect(failing.revocations()).toEqual([CREDENTIAL.credential.access_token]);
  });

  it('a notifications/cancelled for the call ends its response for the reader and revokes, before or after the response came', async () => {
    const endless = () =>
      new Response(new ReadableStream<Uint8Array>({ pull: (controller) => controller.enqueue(new TextEncoder().encode(': ping\n\n')) }), {
        status: 200,
        headers: { 'content-type': 'text/event-stream' },
      });
    const cancel = (requestId: number) =>
      post({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId, reason: 'timeout' } });
    const streaming = await setUp([issued, revoked], { fetch: mcpServer(endless).fetch });
    const reader = (await streaming.fetcher(MCP_URL, post(refund(undefined, 9)))).body!.getReader();
    await reader.read();
    await streaming.fetcher(MCP_URL, cancel(8)); // another call's id: nothing happens
    expect(streaming.revocations()).toEqual([]);
    await streaming.fetcher(MCP_URL, cancel(9));
    // What was already buffered, then the end (bounded: without the cancellation the stream is endless).
    let chunk = await reader.read();
    for (let reads = 0; !chunk.done && reads < 100; reads++) chunk = await reader.read();
    expect(chunk.done).toBe(true);
    expect(streaming.revocations()).toEqual([CREDENTIAL.credential.access_token]);

    // No answer yet: the request itself is aborted.
    const hanging = mcpServer((sent) =>
      sent.init?.signal
        ? new Promise<Response>((_, reject) =>
            sent.init!.signal!.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError'))),
          )
        : new Response(null, { status: 202 }),
    );
    const waiting = await setUp([issued, revoked], { fetch: hanging.fetch });
    const pending = waiting.fetcher(MCP_URL, post(refund(undefined, 3)));
    await expect.poll(() => hanging.sent.length).toBe(1);
    await waiting.fetcher(MCP_URL, cancel(3));
    await expect(pending).rejects.toThrow('aborted');
    expect(waiting.revocations()).toEqual([CREDENTIAL.credential.access_token]);
  });

  it('revokes once, even when the body ends and the request is aborted after', async () => {
    const controller = new AbortController();
    const { fetcher, revocations } = await setUp([issued, revoked]);
    await (await fetcher(MCP_URL, post(refund(), { signal: controller.signal }))).text();
    controller.abort();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(revocations()).toHaveLength(1);
  });

  it('with a DPoP-bound token, sends it under the DPoP scheme with a proof for this POST and URL', async () => {
    const dpopCredential = { ...CREDENTIAL, credential: { ...CREDENTIAL.credential, token_type: 'DPoP' } };
    const { fetcher, mcp } = await setUp([{ status: 201, body: dpopCredential }, revoked], {}, { dpop: true });
    await (await fetcher(`${MCP_URL}?session=1`, post(refund()))).text();
    const headers = mcp!.sent[0]!.headers;
    expect(headers.get('authorization')).toBe(`DPoP ${CREDENTIAL.credential.access_token}`);
    expect(decodeJwt(headers.get('dpop')!)).toMatchObject({ htm: 'POST', htu: MCP_URL, ath: expect.any(String) });
  });
});

describe('a refused tools/call becomes the tool error the model sees', () => {
  it('a denial: HTTP 200, an isError result with the reasons and the decision; nothing sent to the tool', async () => {
    const denials: McpDenial[] = [];
    const { fetcher, mcp, revocations } = await setUp(
      [
        {
          status: 403,
          body: { error: 'access_denied', error_description: 'no permit matched', reasons: ['policy_no_permit'], decision_id: 'd-1' },
        },
      ],
      { onDenied: (denial) => denials.push(denial) },
    );
    const response = await fetcher(MCP_URL, post(refund({ order_id: 'o-1', amount: 5000 }, 7)));
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/json');
    expect(await answer(response)).toEqual({
      jsonrpc: '2.0',
      id: 7,
      result: {
        content: [{ type: 'text', text: `${MCP_REFUSAL_PREFIX}policy_no_permit (no permit matched; decision d-1)` }],
        isError: true,
      },
    });
    expect(mcp!.sent).toEqual([]);
    expect(revocations()).toEqual([]);
    expect(denials).toHaveLength(1);
    expect(denials[0]!.tool).toBe('refund.create');
    expect(denials[0]!.error).toBeInstanceOf(AccessDenied);
  });

  it('an approval: the id in the text; the same call again repeats the request with it, another call does not', async () => {
    const pending: Step = {
      status: 202,
      body: { approval_id: 'ap-1', status: 'pending', expires_at: '2026-12-03T08:00:00.000Z' },
    };
    const denials: McpDenial[] = [];
    const { fetcher, mcp, credentialRequests } = await setUp([pending, pending, issued, revoked, issued, revoked], {
      onDenied: (denial) => denials.push(denial),
    });
    const first = await answer(fetcher(MCP_URL, post(refund({ order_id: 'o-1', amount: 80 }))));
    expect(first.result.isError).toBe(true);
    expect(first.result.content[0].text).toBe(
      `${MCP_REFUSAL_PREFIX}it awaits a reviewer's approval (approval ap-1 until 2026-12-03T08:00:00.000Z). Call the tool again with the same arguments once it is approved.`,
    );
    expect(denials[0]!.error).toBeInstanceOf(ApprovalPending);
    // Still pending: asked again with the id; then approved (the argument order does not matter).
    await fetcher(MCP_URL, post(refund({ order_id: 'o-1', amount: 80 })));
    await (await fetcher(MCP_URL, post(refund({ amount: 80, order_id: 'o-1' })))).text();
    // Used: the next call asks afresh.
    await (await fetcher(MCP_URL, post(refund({ order_id: 'o-1', amount: 80 })))).text();
    expect(credentialRequests().map((request) => JSON.parse(request.body).approval_id)).toEqual([undefined, 'ap-1', 'ap-1', undefined]);
    expect(mcp!.sent).toHaveLength(2);
  });

  it('Tollgate unavailable: a tool error saying so, and the call is not sent (fail closed)', async () => {
    const denials: McpDenial[] = [];
    const { fetcher, mcp } = await setUp([{ status: 503, body: { error: 'temporarily_unavailable', error_description: 'down' } }], {
      onDenied: (denial) => denials.push(denial),
    });
    const refusal = await answer(fetcher(MCP_URL, post(refund())));
    expect(refusal.result).toEqual({
      content: [{ type: 'text', text: `${MCP_REFUSAL_PREFIX}Tollgate is unavailable (down); the call was not sent to the tool.` }],
      isError: true,
    });
    expect(denials[0]!.error).toBeInstanceOf(TollgateUnavailable);
    expect(mcp!.sent).toEqual([]);

    // Nobody listening at all.
    const { privateKey } = await generateKeyPair('EdDSA');
    const sdk = new TollgateClient({
      url: 'http://127.0.0.1:1',
      tokenSource: { workloadId: 'b', privateKey, kid: 'k', alg: 'EdDSA' },
      retry: false,
    });
    const unreachable = mcpServer();
    const refused = await answer(mcpFetch(sdk.task(TASK_ID), { boundary: 'b', fetch: unreachable.fetch })(MCP_URL, post(refund())));
    expect(refused.result.content[0].text).toMatch(
      /^Tollgate refused this call: Tollgate is unavailable \(Tollgate could not be reached.*\); the call was not sent to the tool\.$/,
    );
    expect(unreachable.sent).toEqual([]);
  });

  it('a body it cannot read is refused before anything is sent; bad options are refused at once', async () => {
    const { fetcher, mcp, tollgate } = await setUp([issued]);
    const stream = new ReadableStream({ start: (controller) => controller.close() });
    await expect(fetcher(MCP_URL, { method: 'POST', body: stream, duplex: 'half' } as RequestInit)).rejects.toThrow(TypeError);
    expect(mcp!.sent).toEqual([]);
    expect(tollgate.seen).toEqual([]);
    const task = new TollgateClient({ url: 'http://127.0.0.1:1', tokenSource: () => 't' }).task(TASK_ID);
    expect(() => mcpFetch(task, { boundary: '' })).toThrow(/boundary/);
    expect(() => mcpFetch(task, { boundary: 'b', ttl: 0 })).toThrow(/ttl/);
  });

  it('reads a tools/call from a Request or a byte body too', async () => {
    const { fetcher, mcp, credentialRequests } = await setUp([issued, revoked, issued, revoked]);
    await (await fetcher(new Request(MCP_URL, post(refund())))).text();
    await (await fetcher(MCP_URL, { ...post(refund()), body: new TextEncoder().encode(JSON.stringify(refund())) })).text();
    expect(credentialRequests()).toHaveLength(2);
    expect(mcp!.sent.map((request) => request.headers.get('authorization'))).toEqual(
      Array(2).fill(`Bearer ${CREDENTIAL.credential.access_token}`),
    );
  });
});
