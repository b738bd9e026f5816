import { apply } from './commands/apply.js';
import { approvals } from './commands/approvals.js';
import { audit, exportAudit } from './commands/audit.js';
import { revoke } from './commands/revoke.js';
import { decisionsLs, leasesLs, tasksShow } from './commands/review.js';
import { DEFAULT_URL, type Io } from './context.js';
import { CliError, UsageError } from './errors.js';

export const USAGE = `tollgate: the command line for Tollgate admins and reviewers

Usage:
  tollgate apply -f tollgate.yaml [--dry-run]
  tollgate leases ls [--task ID --workload ID --boundary ID --tool AUD --subject S --action A --state S
                      --since T --until T --limit N --all]
  tollgate decisions ls [--outcome permit|deny|pending, and the same filters]
  tollgate tasks show TASK_ID
  tollgate revoke lease|task|workload ID [--reason TEXT]
  tollgate approvals ls [--status pending|approved|denied|used|expired|revoked|all]
  tollgate approvals approve|deny APPROVAL_ID --reason TEXT
  tollgate audit verify
  tollgate export [--since T --until T] [--format jsonl|csv]

Every command: --url URL (or TOLLGATE_URL, default ${DEFAULT_URL}), --key KEY (or TOLLGATE_KEY),
--json (machine-readable output). Times (--since, --until): 2026-11-24 (a UTC day),
2026-11-24T09:00:00Z, or a time ago: 30m, 12h, 7d, 2w.

Exit status: 0 ok, 1 the API refused (or not found), 2 usage error, 3 cannot reach the broker,
4 audit verify found the chain broken.
`;

/** Runs one command line; resolves to the exit status. Errors are one line on stderr. */
export async function run(argv: string[], io: Io): Promise<number> {
  try {
    return await dispatch(argv, io);
  } catch (error) {
    if (error instanceof CliError) {
      io.stderr.write(`tollgate: ${error.message}\n`);
      if (error instanceof UsageError && error.showUsage) io.stderr.write('Run `tollgate --help` for usage.\n');
      return error.exitCode;
    }
    // A bug of the CLI itself: still one line, no stack.
    io.stderr.write(`tollgate: unexpected error: ${error instanceof Error ? error.message : String(error)}\n`);
    return 1;
  }
}

async function dispatch(argv: string[], io: Io): Promise<number> {
  const [first, second, ...rest] = argv;
  if (first === undefined || first === '--help' || first === '-h' || first === 'help') {
    io.stdout.write(USAGE);
    return first === undefined ? 2 : 0;
  }
  if (argv.includes('--help') || argv.includes('-h')) {
    io.stdout.write(USAGE);
    return 0;
  }
  switch (first) {
    case 'apply':
      return apply(io, argv.slice(1));
    case 'leases':
      return second === 'ls' ? leasesLs(io, rest) : unknown('leases', second, 'ls');
    case 'decisions':
      return second === 'ls' ? decisionsLs(io, rest) : unknown('decisions', second, 'ls');
    case 'tasks':
      return second === 'show' ? tasksShow(io, rest) : unknown('tasks', second, 'show');
    case 'revoke':
      return revoke(io, argv.slice(1));
    case 'approvals':
      return approvals(io, argv.slice(1));
    case 'audit':
      return audit(io, argv.slice(1));
    case 'export':
      return exportAudit(io, argv.slice(1));
    default:
      throw new UsageError(`unknown command "${first}"`);
  }
}

function unknown(command: string, verb: string | undefined, expected: string): never {
  throw new UsageError(`${command}: expected ${expected}${verb === undefined ? '' : `, got "${verb}"`}`);
}
