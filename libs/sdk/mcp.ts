import type { Credential, CredentialRequest, Task } from './client.js';
import { AccessDenied, ApprovalPending, TaskNotActive, TollgateError, TollgateUnavailable } from './errors.js';

/*
 * The bot side of MCP (Model Context Protocol): a fetch for the official client's Streamable HTTP
 * transport that gets a credential for each `tools/call` and for nothing else. It imports nothing of
 * the MCP SDK, so the SDK works without it installed:
 *
 *   new StreamableHTTPClientTransport(new URL(mcpUrl), { fetch: mcpFetch(task, { boundary: 'acme-support' }) })
 */

export interface McpFetchOptions {
  /** The boundary whose `tool` is the MCP server's URL: the token's `aud`. Each MCP tool name is one of its actions. */
  boundary: string;
  /** The `resource` a call names, from the tool name and its arguments; default none. */
  resource?: (tool: string, args: Record<string, unknown> | undefined) => string | undefined;
  /** Seconds a credential may live (capped by the boundary); it is revoked as soon as its call is over anyway. */
  ttl?: number;
  /** The fetch that reaches the MCP server (a proxy agent, a test double); default the global one. */
  fetch?: typeof fetch;
  /**
   * Told of each call Tollgate refused (after the refusal became the tool error the model sees), for
   * the bot's logs and metrics. It gets the tool name and the SDK's typed error, never a token.
   */
  onDenied?: (denial: McpDenial) => void;
}

export interface McpDenial {
  tool: string;
  error: TollgateError;
  /** The text the model sees. */
  text: string;
}

/** The text every refused call starts with, so a bot (or a test) can tell Tollgate's refusals from the tool's own errors. */
export const MCP_REFUSAL_PREFIX = 'Tollgate refused this call: ';

/**
 * A fetch for `StreamableHTTPClientTransport({ fetch })`. Requests that are not a `tools/call` (the
 * handshake, `tools/list`, notifications, the GET stream) go out unchanged: a credential names exactly
 * one call. For a POST whose JSON-RPC body is a `tools/call`, it asks Tollgate for a credential for
 * exactly that call (action = tool name, params = arguments), attaches it (`Authorization`, and a
 * `DPoP` proof for this POST's URL when the token is bound) to that one request, and revokes it as
 * soon as the response has been read to its end, cancelled, aborted or has failed.
 *
 * A refusal is not thrown: it becomes the tool's answer, an `isError` result whose text starts with
 * {@link MCP_REFUSAL_PREFIX} and gives the reasons, and the call is not sent. After `ApprovalPending`,
 * calling the same tool with the same arguments again repeats the request with the approval's id.
 */
export function mcpFetch(task: Task, options: McpFetchOptions): typeof fetch {
  if (typeof options?.boundary !== 'string' || options.boundary.length === 0) throw new TypeError('boundary: a boundary id is required');
  if (options.resource !== undefined && typeof options.resource !== 'function') throw new TypeError('resource: must be a function');
  if (options.ttl !== undefined && (!Number.isInteger(options.ttl) || options.ttl <= 0))
    throw new TypeError('ttl: must be a positive whole number of seconds');
  const send = options.fetch ?? ((input: string | URL | Request, init?: RequestInit) => globalThis.fetch(input, init));
  const approvals = new PendingApprovals();
  // The calls whose response is still being read, by JSON-RPC id: a call the client cancels is cut short.
  const inFlight = new Map<string | number, () => void>();

  const callTool = async (call: ToolCallMessage, input: string | URL | Request, init: RequestInit | undefined): Promise<Response> => {
    const { name, arguments: args } = call.params;
    const request: CredentialRequest = { boundary: options.boundary, action: name };
    if (args !== undefined) request.params = args;
    const resource = options.resource?.(name, args);
    if (resource !== undefined) request.resource = resource;
    if (options.ttl !== undefined) request.ttl = options.ttl;

    const key = approvals.key(request);
    let credential: Credential;
    try {
      credential = await task.credential(request, { approvalId: approvals.get(key) });
    } catch (error) {
      if (!(error instanceof TollgateError)) throw error;
      if (error instanceof ApprovalPending) approvals.remember(key, error.approvalId);
      else approvals.forget(key);
      const text = MCP_REFUSAL_PREFIX + refusalReasons(error);
      options.onDenied?.({ tool: name, error, text });
      return jsonResponse(toolError(call.id, text));
    }
    approvals.forget(key);
    const stop = () => inFlightCall.stop();
    // Another call may have reused the id since (another session): only this call's entry goes.
    const inFlightCall = new CallInFlight(task, credential, () => inFlight.get(call.id) === stop && inFlight.delete(call.id));
    inFlight.set(call.id, stop);
    return inFlightCall.send(send, input, init);
  };

  return async (input, init) => {
    const method = (init?.method ?? (input instanceof Request ? input.method : 'GET')).toUpperCase();
    if (method !== 'POST') return send(input, init);
    const message = parseJson(await bodyText(input, init));
    if (Array.isArray(message)) {
      // One credential names one call and rides on one HTTP request: a batch cannot carry a tools/call.
      if (message.some(isToolCall)) return jsonResponse(refuseBatch(message));
      return send(input, init);
    }
    if (isToolCall(message)) return callTool(message, input, init);
    // The client gave up on a call (its timeout, its caller's AbortSignal): the server may keep the
    // response stream open, so the fetch stops reading it, which revokes the credential at once.
    const cancelled = cancelledRequestId(message);
    if (cancelled !== undefined) inFlight.get(cancelled)?.();
    return send(input, init);
  };
}

/** A JSON-RPC `tools/call` request, as the official client sends it. */
interface ToolCallMessage {
  jsonrpc: '2.0';
  id: string | number;
  method: 'tools/call';
  params: { name: string; arguments?: Record<string, unknown> };
}

/**
 * One credential on the one HTTP request it was asked for. It is revoked, once, when the call is
 * over: the response body read to its end or cancelled, the request aborted, the fetch failed, or
 * the client cancelled the call (`stop`).
 */
class CallInFlight {
  private released: Promise<void> | undefined;
  private readonly stopper = new AbortController();
  private reader: ReadableStreamDefaultReader<Uint8Array> | undefined;

  constructor(
    private readonly task: Task,
    private readonly credential: Credential,
    private readonly onRelease: () => void,
  ) {}

  async send(send: typeof fetch, input: string | URL | Request, init: RequestInit | undefined): Promise<Response> {
    const callerSignal = init?.signal ?? (input instanceof Request ? input.signal : undefined);
    const signal = callerSignal ? AbortSignal.any([callerSignal, this.stopper.signal]) : this.stopper.signal;
    signal.addEventListener('abort', () => void this.release(), { once: true });
    let response: Response;
    try {
      const url = input instanceof Request ? input.url : String(input);
      const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
      for (const [name, value] of Object.entries(await this.credential.headers('POST', url))) headers.set(name, value);
      response = await send(input, { ...init, headers, signal });
    } catch (error) {
      await this.release();
      throw error;
    }
    if (response.body === null) {
      await this.release();
      return response;
    }
    return new Response(this.releasingBody(response.body), {
      status: response.status,
      statusText: response.statusText,
      headers: response.headers,
    });
  }

  /** Ends the call early: the reader sees the end of the body (the connection closes), the credential is revoked. */
  stop(): void {
    if (this.reader) this.reader.cancel().catch(() => {});
    else this.stopper.abort();
    void this.release();
  }

  private release(): Promise<void> {
    if (this.released === undefined) {
      this.onRelease();
      this.released = this.task.revoke(this.credential);
    }
    return this.released;
  }

  /**
   * The body, passed through chunk by chunk. Its end is reported to the reader only after the
   * revocation answered: a JSON response is read to its end before it is used, so the credential is
   * gone before the model sees the result.
   */
  private releasingBody(body: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
    const reader = (this.reader = body.getReader());
    return new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        let chunk: Awaited<ReturnType<typeof reader.read>>;
        try {
          chunk = await reader.read();
        } catch (error) {
          await this.release();
          controller.error(error);
          return;
        }
        if (chunk.done) {
          await this.release();
          controller.close();
        } else controller.enqueue(chunk.value);
      },
      cancel: async (reason) => {
        try {
          await reader.cancel(reason);
        } finally {
          await this.release();
        }
      },
    });
  }
}

/** What the model reads after the words "Tollgate refused this call: ". */
function refusalReasons(error: TollgateError): string {
  if (error instanceof ApprovalPending) {
    const until = error.expiresAt ? ` until ${error.expiresAt.toISOString()}` : '';
    return `it awaits a reviewer's approval (approval ${error.approvalId}${until}). Call the tool again with the same arguments once it is approved.`;
  }
  if (error instanceof TaskNotActive) return `the task has ended (task_not_active): ${error.description}`;
  if (error instanceof AccessDenied) {
    const reasons = error.reasons.length > 0 ? error.reasons.join(', ') : error.code;
    return `${reasons} (${error.description}${error.decisionId ? `; decision ${error.decisionId}` : ''})`;
  }
  if (error instanceof TollgateUnavailable) return `Tollgate is unavailable (${error.description}); the call was not sent to the tool.`;
  return `${error.code} (${error.description})`;
}

function toolError(id: string | number, text: string): Record<string, unknown> {
  return { jsonrpc: '2.0', id, result: { content: [{ type: 'text', text }], isError: true } };
}

/**
 * The whole batch is refused and nothing is sent (fail closed): its tools/call get a tool error the
 * model sees, its other requests a JSON-RPC error; notifications get no answer.
 */
function refuseBatch(messages: unknown[]): Record<string, unknown>[] {
  const answers: Record<string, unknown>[] = [];
  for (const message of messages) {
    if (isToolCall(message)) {
      answers.push(
        toolError(
          message.id,
          `${MCP_REFUSAL_PREFIX}a JSON-RPC batch cannot carry a tools/call (one credential names one call); send each call on its own.`,
        ),
      );
    } else if (isRecord(message) && (typeof message.id === 'string' || typeof message.id === 'number')) {
      answers.push({
        jsonrpc: '2.0',
        id: message.id,
        error: { code: -32600, message: 'not sent: the batch also held a tools/call, which Tollgate cannot authorize in a batch' },
      });
    }
  }
  return answers;
}

function jsonResponse(body: unknown): Response {
  return new Response(JSON.stringify(body), { status: 200, headers: { 'content-type': 'application/json' } });
}

function isToolCall(message: unknown): message is ToolCallMessage {
  if (!isRecord(message) || message.method !== 'tools/call') return false;
  if (typeof message.id !== 'string' && typeof message.id !== 'number') return false;
  const params = message.params;
  // Anything else is not a call a credential could name; it goes out without one and the server refuses it.
  return isRecord(params) && typeof params.name === 'string' && (params.arguments === undefined || isRecord(params.arguments));
}

/** The `requestId` of a `notifications/cancelled`. */
function cancelledRequestId(message: unknown): string | number | undefined {
  if (!isRecord(message) || message.method !== 'notifications/cancelled' || !isRecord(message.params)) return undefined;
  const id = message.params.requestId;
  return typeof id === 'string' || typeof id === 'number' ? id : undefined;
}

function parseJson(text: string | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined; // Not JSON-RPC: it goes out as it is, without a credential.
  }
}

/** The request body as text, to see whether it is a tools/call. A body that cannot be read is refused, not sent blind. */
async function bodyText(input: string | URL | Request, init: RequestInit | undefined): Promise<string | undefined> {
  const body = init?.body;
  if (body === undefined || body === null) return input instanceof Request && input.body !== null ? input.clone().text() : undefined;
  if (typeof body === 'string') return body;
  if (body instanceof URLSearchParams) return body.toString();
  if (body instanceof Blob) return body.text();
  if (body instanceof ArrayBuffer || ArrayBuffer.isView(body)) return new TextDecoder().decode(body);
  throw new TypeError('mcpFetch: a streamed or form request body cannot be checked for a tools/call; send JSON-RPC as a string');
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The approval each refused call awaits, by call (action, resource, params): the same call made again
 * repeats the request with the approval's id. Bounded: the oldest entries go first.
 */
class PendingApprovals {
  private static readonly MAX = 1000;
  private readonly byCall = new Map<string, string>();

  key(request: CredentialRequest): string {
    return stableJson([request.action, request.resource ?? null, request.params ?? null]);
  }

  get(key: string): string | undefined {
    return this.byCall.get(key);
  }

  remember(key: string, approvalId: string): void {
    this.byCall.delete(key);
    this.byCall.set(key, approvalId);
    if (this.byCall.size > PendingApprovals.MAX) this.byCall.delete(this.byCall.keys().next().value!);
  }

  forget(key: string): void {
    this.byCall.delete(key);
  }
}

/** JSON with object keys sorted: equal arguments give equal keys whatever their order. */
function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (isRecord(value)) {
    const keys = Object.keys(value).sort();
    return `{${keys.map((key) => `${JSON.stringify(key)}:${stableJson(value[key])}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}
