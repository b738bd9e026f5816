import { Command, type Io } from '../context.js';
import { ChainBroken, UsageError } from '../errors.js';
import { parseTime } from '../time.js';
import type { Query } from '../api.js';

interface Verification {
  ok: boolean;
  verified: number;
  head: { seq: string; hash: string } | null;
  unchained: number;
  first_broken?: { seq: string; id: string; reason: string };
}

interface AuditEvent {
  id: string;
  seq: string | null;
  at: string;
  kind: string;
  actor: string;
  task_id: string | null;
  lease_id: string | null;
  data: Record<string, unknown>;
  prev_hash: string | null;
  hash: string | null;
}

/** `tollgate audit verify`: exit 4 when the chain is broken. */
export async function audit(io: Io, args: string[]): Promise<number> {
  const [verb, ...rest] = args;
  if (verb !== 'verify') throw new UsageError(`audit: expected verify${verb === undefined ? '' : `, got "${verb}"`}`);
  const command = new Command({ name: 'audit verify', io, args: rest, options: {} });
  command.expectPositionals();
  const result = await command.api().get<Verification>('/v1/audit/verify');
  if (command.json) command.printJson(result);
  if (!result.ok) {
    const broken = result.first_broken;
    throw new ChainBroken(
      `the audit chain is BROKEN${broken ? ` at seq ${broken.seq} (event ${broken.id}): ${broken.reason}` : ''}; ${result.verified} event(s) before it verified`,
    );
  }
  if (!command.json) {
    command.print(
      `Audit chain intact: ${result.verified} event(s) verified` +
        (result.head ? `, head seq ${result.head.seq} hash ${result.head.hash}` : '') +
        (result.unchained > 0 ? `; ${result.unchained} newer event(s) not chained yet` : '') +
        '.',
    );
  }
  return 0;
}

const CSV_COLUMNS = ['id', 'seq', 'at', 'kind', 'actor', 'task_id', 'lease_id', 'prev_hash', 'hash', 'data'] as const;

/** `tollgate export --since --until --format jsonl|csv`: audit events, oldest first. */
export async function exportAudit(io: Io, args: string[]): Promise<number> {
  const command = new Command({
    name: 'export',
    io,
    args,
    options: {
      since: { type: 'string' },
      until: { type: 'string' },
      format: { type: 'string' },
      task: { type: 'string' },
      workload: { type: 'string' },
      kind: { type: 'string' },
    },
  });
  command.expectPositionals();
  const format = command.option('format') ?? 'jsonl';
  if (format !== 'jsonl' && format !== 'csv') throw new UsageError(`export: --format: must be jsonl or csv, got "${format}"`);
  const query: Query = { task: command.option('task'), workload: command.option('workload'), kind: command.option('kind'), limit: 1000 };
  for (const name of ['since', 'until'] as const) {
    const value = command.option(name);
    if (value !== undefined) query[name] = parseTime(name, value, command.now);
  }
  // The API lists newest first; an export reads oldest first, as the chain runs.
  const pages: AuditEvent[][] = [];
  for await (const page of command.api().pages<AuditEvent>('/v1/audit', query)) pages.push(page.items);
  const events = pages.flat().reverse();
  if (format === 'jsonl') {
    for (const event of events) command.io.stdout.write(`${JSON.stringify(event)}\n`);
  } else {
    command.io.stdout.write(`${CSV_COLUMNS.join(',')}\n`);
    for (const event of events) {
      command.io.stdout.write(
        `${CSV_COLUMNS.map((column) => csvCell(column === 'data' ? JSON.stringify(event.data) : event[column])).join(',')}\n`,
      );
    }
  }
  command.io.stderr.write(`exported ${events.length} audit event(s)\n`);
  return 0;
}

/** RFC 4180: quoted when it holds a comma, a quote or a line break; quotes doubled. */
function csvCell(value: unknown): string {
  if (value === null || value === undefined) return '';
  const text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}
