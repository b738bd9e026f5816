import { Command, type Io } from '../context.js';
import { UsageError } from '../errors.js';
import { table } from '../table.js';
import { shortTime } from '../time.js';

interface Approval {
  approval_id: string;
  status: string;
  task_id: string;
  workload_id: string;
  boundary_id: string;
  action: string;
  resource: string | null;
  params: Record<string, unknown> | null;
  purpose: string | null;
  requested_at: string;
  expires_at: string;
  decided_by: string | null;
  reason: string | null;
}

/** `tollgate approvals ls [--status S] | approve ID --reason R | deny ID --reason R`. */
export async function approvals(io: Io, args: string[]): Promise<number> {
  const [verb, ...rest] = args;
  switch (verb) {
    case 'ls':
      return list(io, rest);
    case 'approve':
    case 'deny':
      return decide(io, rest, verb);
    default:
      throw new UsageError(`approvals: expected ls, approve or deny${verb === undefined ? '' : `, got "${verb}"`}`);
  }
}

async function list(io: Io, args: string[]): Promise<number> {
  const command = new Command({
    name: 'approvals ls',
    io,
    args,
    options: {
      status: { type: 'string' },
      task: { type: 'string' },
      workload: { type: 'string' },
      boundary: { type: 'string' },
      limit: { type: 'string' },
    },
  });
  command.expectPositionals();
  const status = command.option('status') ?? 'pending';
  const limit = command.option('limit') ?? '100';
  const page = await command.api().get<{ items: Approval[]; next_cursor: string | null }>('/v1/approvals', {
    status: status === 'all' ? undefined : status,
    task: command.option('task'),
    workload: command.option('workload'),
    boundary: command.option('boundary'),
    limit,
  });
  if (command.json) {
    command.printJson(page);
    return 0;
  }
  if (page.items.length === 0) {
    command.print(status === 'pending' ? 'No approvals waiting.' : `No ${status === 'all' ? '' : `${status} `}approvals.`);
    return 0;
  }
  command.print(
    table(
      ['REQUESTED', 'STATUS', 'APPROVAL', 'WORKLOAD', 'TASK', 'BOUNDARY', 'ACTION', 'RESOURCE', 'PARAMS', 'EXPIRES'],
      page.items.map((a) => [
        shortTime(a.requested_at),
        a.status,
        a.approval_id,
        a.workload_id,
        a.task_id,
        a.boundary_id,
        a.action,
        a.resource ?? '-',
        a.params ? JSON.stringify(a.params) : '-',
        shortTime(a.expires_at),
      ]),
    ),
  );
  return 0;
}

async function decide(io: Io, args: string[], verb: 'approve' | 'deny'): Promise<number> {
  const command = new Command({ name: `approvals ${verb}`, io, args, options: { reason: { type: 'string' } } });
  const [id] = command.expectPositionals('approval-id');
  const reason = command.option('reason');
  if (reason === undefined || reason.trim() === '')
    throw new UsageError(`approvals ${verb}: --reason is required (it is kept with the approval and in the audit log)`);
  const approval = await command.api().post<Approval>(`/v1/approvals/${encodeURIComponent(id!)}/${verb}`, { reason });
  if (command.json) command.printJson(approval);
  else if (verb === 'approve')
    command.print(
      `Approved ${approval.approval_id} (${approval.boundary_id} ${approval.action} ${approval.resource ?? ''}): the bot may repeat the request once, until ${shortTime(approval.expires_at)}.`,
    );
  else command.print(`Denied ${approval.approval_id} (${approval.boundary_id} ${approval.action} ${approval.resource ?? ''}).`);
  return 0;
}
