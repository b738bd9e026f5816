import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  AccessDenied,
  ApprovalPending,
  mcpFetch,
  Task,
  TaskNotActive,
  type Credential,
  type CredentialOptions,
  type CredentialRequest,
  type TollgateClient,
} from '../../libs/sdk/index.js';
import { orderResource } from './crm.js';
import { fingerprint } from './fingerprint.js';
import { shown, type Transcript } from './transcript.js';

/**
 * The bot's side: the official MCP client, whose transport fetches through the SDK's `mcpFetch`
 * (a credential per `tools/call`, for exactly that call, revoked once its response is read), and
 * a Task that narrates what it asks Tollgate. Also the raw `tools/call` a bot that keeps (or
 * tampers with) a token sends by itself, to show what the MCP server does with it.
 */

/** The boundary whose action each CRM tool is (the bot is configured with it, as with any tool). */
const BOUNDARY_OF: Record<string, string> = { get_order: 'crm-orders', cancel_order: 'crm-orders', refund_order: 'crm-refunds' };

/** What the model gets back from a tool: its text, and whether it is an error. */
export interface ToolAnswer {
  isError: boolean;
  text: string;
}

/** The SDK's Task, telling the transcript each credential request and its answer, and each revocation. */
export class NarratedTask extends Task {
  /** The leases Tollgate permitted to this task, in order. */
  readonly permits: Credential[] = [];
  /** The reasons of each refusal, in order. */
  readonly refusals: string[][] = [];

  constructor(
    client: TollgateClient,
    task: Task,
    private readonly transcript: Transcript,
  ) {
    super(client, task.snapshot ?? task.id);
  }

  override async credential(request: CredentialRequest, options: CredentialOptions = {}): Promise<Credential> {
    const amount = typeof request.params?.amount === 'number' ? `, amount ${request.params.amount} EUR` : '';
    const approval = options.approvalId ? ` with approval ${options.approvalId}` : '';
    this.transcript.say(
      'bot',
      `asks Tollgate for a credential: ${request.boundary} / ${request.action} on ${request.resource ?? '(no resource)'}${amount}${approval}`,
    );
    try {
      const credential = await super.credential(request, options);
      this.permits.push(credential);
      this.transcript.say(
        'Tollgate',
        `PERMIT: lease ${credential.leaseId}, ${credential.tokenType} token ${fingerprint(credential.accessToken ?? '')}, expires in ${credential.expiresIn} s`,
      );
      return credential;
    } catch (error) {
      if (error instanceof ApprovalPending) {
        this.transcript.say(
          'Tollgate',
          `PENDING: the approval rule holds; approval ${error.approvalId} waits for a reviewer, no credential yet`,
        );
      } else if (error instanceof AccessDenied || error instanceof TaskNotActive) {
        this.refusals.push([...error.reasons]);
        const decision = error.decisionId ? ` (decision ${error.decisionId})` : '';
        this.transcript.say('Tollgate', `DENY, reasons [${error.reasons.join(', ')}]${decision}: ${error.description}`);
      }
      throw error;
    }
  }

  override async revoke(credential: Credential): Promise<void> {
    await super.revoke(credential);
    this.transcript.say('SDK', `revoked lease ${credential.leaseId} as soon as the response was read`);
  }
}

/** The bot's MCP clients for one task: one per boundary, each through its own mcpFetch. */
export class BotTools {
  /** The tokens the bot's calls carried, kept in memory only (a replay in the story uses them). */
  readonly sent: { tool: string; token: string }[] = [];
  private readonly clients = new Map<string, Promise<Client>>();

  constructor(
    private readonly task: NarratedTask,
    private readonly crmUrl: string,
    private readonly transcript: Transcript,
  ) {}

  async call(tool: string, args: Record<string, unknown>): Promise<ToolAnswer> {
    this.transcript.say('bot', `calls the MCP tool ${tool} ${shown(args)}`);
    const client = await this.client(BOUNDARY_OF[tool] ?? 'crm-orders');
    const result = await client.callTool({ name: tool, arguments: args });
    const content = Array.isArray(result.content) ? (result.content as { type: string; text?: string }[]) : [];
    const answer = { isError: result.isError === true, text: content.map((item) => item.text ?? '').join(' ') };
    if (answer.isError) this.transcript.say('bot', `the tool answered with an error (what the model reads): ${answer.text}`);
    return answer;
  }

  async close(): Promise<void> {
    const clients = await Promise.all(this.clients.values());
    await Promise.all(clients.map((client) => client.close().catch(() => {})));
  }

  private client(boundary: string): Promise<Client> {
    let client = this.clients.get(boundary);
    if (!client) {
      client = this.connect(boundary);
      this.clients.set(boundary, client);
    }
    return client;
  }

  private async connect(boundary: string): Promise<Client> {
    const client = new Client({ name: 'support-bot', version: '1.0.0' });
    const fetch = mcpFetch(this.task, { boundary, resource: orderResource, fetch: this.narrating });
    await client.connect(new StreamableHTTPClientTransport(new URL(this.crmUrl), { fetch }));
    return client;
  }

  /** What reaches the CRM: each tools/call is told with its token's fingerprint. */
  private readonly narrating = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const token = new Headers(init?.headers).get('authorization')?.split(' ')[1];
    const call = typeof init?.body === 'string' ? toolCallIn(init.body) : undefined;
    if (call && token) {
      this.sent.push({ tool: call, token });
      this.transcript.say('bot', `→ CRM tools/call ${call} with token ${fingerprint(token)}`);
    }
    return fetch(input, init);
  };
}

function toolCallIn(body: string): string | undefined {
  try {
    const message = JSON.parse(body) as { method?: unknown; params?: { name?: unknown } };
    return message.method === 'tools/call' && typeof message.params?.name === 'string' ? message.params.name : undefined;
  } catch {
    return undefined;
  }
}

/** What the CRM answered a raw tools/call: the HTTP status, the tool's text or the refusal's error, the challenge. */
export interface RawAnswer {
  status: number;
  text: string;
  /** `WWW-Authenticate` of a refusal. */
  challenge: string | null;
}

/** A `tools/call` sent by hand with a token the bot holds: what a bot that kept or tampered with one does. */
export async function rawToolCall(
  crmUrl: string,
  token: string | undefined,
  tool: string,
  args: Record<string, unknown>,
): Promise<RawAnswer> {
  const response = await fetch(crmUrl, {
    method: 'POST',
    headers: {
      ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
    },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: tool, arguments: args } }),
  });
  const body = (await response.json().catch(() => ({}))) as { error?: unknown; result?: { content?: { text?: string }[] } };
  const text = typeof body.error === 'string' ? body.error : (body.result?.content?.map((item) => item.text ?? '').join(' ') ?? '');
  return { status: response.status, text, challenge: response.headers.get('www-authenticate') };
}

/**
 * Presents a token every 10 ms until the CRM refuses it (at most `limitMs`): how long a revocation
 * takes to reach the MCP server. Resolves with the refusal (or the last answer) and the time taken.
 */
export async function presentUntilRefused(
  crmUrl: string,
  token: string,
  call: { tool: string; args: Record<string, unknown> },
  since: number,
  limitMs = 5_000,
): Promise<{ answer: RawAnswer; afterMs: number; admitted: number }> {
  let admitted = 0;
  for (;;) {
    const answer = await rawToolCall(crmUrl, token, call.tool, call.args);
    const afterMs = performance.now() - since;
    if (answer.status !== 200 || afterMs > limitMs) return { answer, afterMs, admitted };
    admitted++;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
