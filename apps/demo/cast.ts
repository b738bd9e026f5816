import type { TollgateClient } from '../../libs/sdk/index.js';
import { BotTools, NarratedTask } from './bot.js';
import type { Crm } from './crm.js';
import type { Transcript } from './transcript.js';

/** Who plays in the story's acts: the bot's client, the CRM, the people with API keys. */
export interface Cast {
  transcript: Transcript;
  crm: Crm;
  client: TollgateClient;
  admin: Api;
  reviewer: Api;
  /** Closed at the end of the story: the bot's MCP clients. */
  opened: BotTools[];
}

export const SUBJECT = 'customer-42';
/** Drift denials a task may collect: set on both boundaries, so a Tollgate with another default tells the same story. */
export const DRIFT_THRESHOLD = 3;

/** A conversation: a task of the bot's, and its MCP clients for it. */
export async function openConversation(
  cast: Cast,
  intent: string,
  lead = 'opens a task',
): Promise<{ task: NarratedTask; tools: BotTools }> {
  const task = new NarratedTask(cast.client, await cast.client.openTask({ intent, subject: SUBJECT }), cast.transcript);
  cast.transcript.say('bot', `${lead}: intent ${intent} for ${SUBJECT}`);
  const tools = new BotTools(task, cast.crm.url, cast.transcript);
  cast.opened.push(tools);
  return { task, tools };
}

export type Api = (method: string, path: string, body?: unknown) => Promise<unknown>;

/** Tollgate's HTTP API with an API key (the admin's, the reviewer's). */
export function apiAs(tollgate: string, key: string, who: string): Api {
  return async (method, path, body) => {
    const response = await fetch(`${tollgate}${path}`, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    if (!response.ok) {
      const answer = (await response.json().catch(() => ({}))) as { error?: string; error_description?: string };
      throw new Error(`${who} ${method} ${path} answered ${response.status} ${answer.error ?? ''}: ${answer.error_description ?? ''}`);
    }
    return response.json();
  };
}

export interface ApprovalView {
  approval_id: string;
  status: string;
  workload_id: string;
  action: string;
  resource: string | null;
  params: Record<string, unknown> | null;
  intent: string;
  decided_by: string | null;
  lease_id: string | null;
}

export interface DecisionView {
  outcome: string;
  boundary_id: string | null;
  action: string | null;
  reasons: string[];
  drift: 'counted' | 'suspended_task' | null;
}

export function list(ids: string[]): string {
  return ids.length === 0 ? 'none' : ids.join(', ');
}
