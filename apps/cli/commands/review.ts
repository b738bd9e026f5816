import { Command, type Io } from '../context.js';
import { UsageError } from '../errors.js';
import { table } from '../table.js';
import { parseTime, shortTime } from '../time.js';
import type { Query } from '../api.js';

/** Filters GET /v1/leases and GET /v1/decisions share. */
const FILTERS = {
  task: { type: 'string' },
  workload: { type: 'string' },
  boundary: { type: 'string' },
  tool: { type: 'string' },
  subject: { type: 'string' },
  action: { type: 'string' },
  since: { type: 'string' },
  until: { type: 'string' },
  limit: { type: 'string' },
  all: { type: 'boolean' },
} as const;

const DEFAULT_LIMIT = 50;

interface Lease {
  lease_id: string;
  task_id: string;
  workload_id: string;
  boundary_id: string;
  action: string;
  resource: string | null;
  state: string;
  issued_at: string;
  expires_at: string;
  revoke_reason: string | null;
}

interface Decision {
  decision_id: string;
  task_id: string | null;
  workload_id: string;
  boundary_id: string | null;
  action: string | null;
  resource: string | null;
  outcome: 'permit' | 'deny' | 'pending';
  reasons: string[];
  drift: string | null;
  lease_id: string | null;
  lease_state: string | null;
  at: string;
}

/** The query a list command sends, from its options; the page size is `limit` (or 1000 with --all). */
function listQuery(command: Command<typeof FILTERS>, extra: string[]): { query: Query; limit: number; all: boolean } {
  const limitText = command.option('limit');
  let limit = DEFAULT_LIMIT;
  if (limitText !== undefined) {
    if (!/^\d{1,6}$/.test(limitText) || Number(limitText) < 1)
      throw new UsageError(`${command.name}: --limit: must be a whole number of at least 1`);
    limit = Number(limitText);
  }
  const all = command.flag('all');
  const query: Query = {};
  for (const name of ['task', 'workload', 'boundary', 'tool', 'subject', 'action', ...extra]) query[name] = command.option(name);
  for (const name of ['since', 'until'] as const) {
    const value = command.option(name);
    if (value !== undefined) query[name] = parseTime(name, value, command.now);
  }
  return { query, limit, all };
}

/** Reads pages until `limit` items (or every item, with --all); says whether more were left. */
async function collect<T>(
  command: Command<typeof FILTERS>,
  path: string,
  query: Query,
  limit: number,
  all: boolean,
): Promise<{ items: T[]; more: boolean }> {
  const items: T[] = [];
  const pageSize = all ? 1000 : Math.min(limit, 1000);
  for await (const page of command.api().pages<T>(path, { ...query, limit: pageSize })) {
    items.push(...page.items);
    if (!all && items.length >= limit) return { items: items.slice(0, limit), more: page.next_cursor !== null || items.length > limit };
  }
  return { items, more: false };
}

/** "boundary crm-refunds, subject customer-42, since 2026-11-24": what the list is of. */
function describeFilters(query: Query): string {
  const parts = Object.entries(query)
    .filter(([, value]) => value !== undefined)
    .map(([name, value]) => `${name} ${value}`);
  return parts.length === 0 ? 'all' : parts.join(', ');
}

/**
 * The part `leases ls` and `decisions ls` share: parse the filters, page through the route, and
 * answer --json or an empty list directly. Undefined when that is all there is to print.
 */
async function listing<T>(
  io: Io,
  args: string[],
  spec: { name: string; route: string; filter: 'state' | 'outcome'; title: string; empty: string },
): Promise<{ command: Command<typeof FILTERS>; items: T[]; more: boolean } | undefined> {
  const command = new Command({ name: spec.name, io, args, options: { ...FILTERS, [spec.filter]: { type: 'string' } } });
  command.expectPositionals();
  const { query, limit, all } = listQuery(command, [spec.filter]);
  const { items, more } = await collect<T>(command, spec.route, query, limit, all);
  if (command.json) {
    command.printJson({ items, more });
    return undefined;
  }
  command.print(`${spec.title} (${describeFilters(query)}), newest first:`);
  if (items.length === 0) {
    command.print(spec.empty);
    return undefined;
  }
  return { command, items, more };
}

export async function leasesLs(io: Io, args: string[]): Promise<number> {
  const list = await listing<Lease>(io, args, {
    name: 'leases ls',
    route: '/v1/leases',
    filter: 'state',
    title: 'Leases',
    empty: 'No leases.',
  });
  if (!list) return 0;
  const { command, items, more } = list;
  command.print(
    table(
      ['ISSUED', 'STATE', 'WORKLOAD', 'TASK', 'BOUNDARY', 'ACTION', 'RESOURCE', 'EXPIRES', 'REVOKE REASON', 'LEASE'],
      items.map((l) => [
        shortTime(l.issued_at),
        l.state,
        l.workload_id,
        l.task_id,
        l.boundary_id,
        l.action,
        l.resource ?? '-',
        shortTime(l.expires_at),
        l.revoke_reason ?? '-',
        l.lease_id,
      ]),
    ),
  );
  const active = items.filter((l) => l.state === 'active').length;
  command.print(`${count(items.length, 'lease')}, ${active} still active.${more ? ' More match: add --all, or a larger --limit.' : ''}`);
  return 0;
}

export async function decisionsLs(io: Io, args: string[]): Promise<number> {
  const list = await listing<Decision>(io, args, {
    name: 'decisions ls',
    route: '/v1/decisions',
    filter: 'outcome',
    title: 'Decisions',
    empty: 'No decisions: nobody asked.',
  });
  if (!list) return 0;
  const { command, items, more } = list;
  command.print(
    table(
      ['TIME', 'OUTCOME', 'WORKLOAD', 'TASK', 'BOUNDARY', 'ACTION', 'RESOURCE', 'REASONS', 'LEASE'],
      items.map((d) => [
        shortTime(d.at),
        d.outcome === 'deny' ? 'DENY' : d.outcome,
        d.workload_id,
        d.task_id ?? '-',
        d.boundary_id ?? '-',
        d.action ?? '-',
        d.resource ?? '-',
        d.reasons.length > 0 ? d.reasons.join(',') + (d.drift === 'suspended_task' ? ' (suspended the task)' : '') : '-',
        d.lease_state ?? '-',
      ]),
    ),
  );
  const permits = items.filter((d) => d.outcome === 'permit');
  const live = permits.filter((d) => d.lease_state === 'active').length;
  const denied = items.filter((d) => d.outcome === 'deny');
  const pending = items.filter((d) => d.outcome === 'pending').length;
  const workloads = (list: Decision[]) => [...new Set(list.map((d) => d.workload_id))].join(', ') || 'nobody';
  command.print(
    `${count(items.length, 'decision')}: ${permits.length} permitted (${workloads(permits)}; ${live} lease${live === 1 ? '' : 's'} still active), ` +
      `${denied.length} refused (${workloads(denied)})${pending > 0 ? `, ${pending} sent to a reviewer` : ''}.${more ? ' More match: add --all, or a larger --limit.' : ''}`,
  );
  return 0;
}

interface TimelineEvent {
  at: string;
  kind: string;
  [field: string]: unknown;
}

export async function tasksShow(io: Io, args: string[]): Promise<number> {
  const command = new Command({ name: 'tasks show', io, args, options: {} });
  const [id] = command.expectPositionals('task-id');
  const timeline = await command
    .api()
    .get<{ task: Record<string, string | null>; events: TimelineEvent[] }>(`/v1/tasks/${encodeURIComponent(id!)}/timeline`);
  if (command.json) {
    command.printJson(timeline);
    return 0;
  }
  const { task } = timeline;
  command.print(`Task ${task.task_id}: workload ${task.workload_id}, subject ${task.subject}`);
  command.print(
    `  intent ${task.intent}, ${task.state}${task.end_reason ? ` (${task.end_reason})` : ''}; opened ${shortTime(task.created_at)}, ` +
      (task.ended_at ? `ended ${shortTime(task.ended_at)}` : `expires ${shortTime(task.expires_at)}`),
  );
  command.print(
    table(
      ['TIME', 'EVENT', 'DETAIL'],
      timeline.events.map((event) => [shortTime(event.at), event.kind, detail(event)]),
    ),
  );
  return 0;
}

/** One line about a timeline event, in the reviewer's words. */
function detail(event: TimelineEvent): string {
  const text = (name: string) => (event[name] === null || event[name] === undefined ? undefined : String(event[name]));
  const call = [text('boundary_id'), text('action'), text('resource')].filter(Boolean).join(' ');
  switch (event.kind) {
    case 'task.opened':
      return `intent ${text('intent')} for ${text('subject')}`;
    case 'task.intent_changed':
      return `intent ${text('from') ?? '?'} → ${text('intent')}`;
    case 'decision.permit':
      return `${call}${event.lease_id ? ` → lease ${text('lease_id')}` : ''}`;
    case 'decision.deny':
      return `${call}: ${(event.reasons as string[] | undefined)?.join(', ') ?? ''}${event.drift === 'suspended_task' ? ' (suspended the task)' : ''}`;
    case 'decision.pending':
      return `${call}: waits for approval ${text('approval_id') ?? ''}`.trimEnd();
    case 'approval.approved':
    case 'approval.denied':
      return `approval ${text('approval_id')} by ${text('decided_by')}: ${text('reason') ?? ''}`;
    case 'lease.issued':
      return `lease ${text('lease_id')} (${call}, ${text('credential_kind')}, until ${shortTime(text('expires_at'))})`;
    case 'lease.revoked':
      return `lease ${text('lease_id')}: ${text('reason')}`;
    case 'lease.expired':
      return `lease ${text('lease_id')}`;
    default: {
      const { at: _at, kind: _kind, ...rest } = event;
      if (event.kind.startsWith('task.') && Object.keys(rest).length === 1 && 'reason' in rest) return text('reason') ?? '';
      return JSON.stringify(rest);
    }
  }
}

function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}
