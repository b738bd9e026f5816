import { readFileSync } from 'node:fs';
import { apiKeys, signingKeys, simulate, workloads } from './commands/admin.js';
import { apply } from './commands/apply.js';
import { approvals } from './commands/approvals.js';
import { mcp } from './commands/mcp.js';
import { profiles } from './commands/profile.js';
import { audit, exportAudit } from './commands/audit.js';
import { revoke } from './commands/revoke.js';
import { decisionsLs, leasesLs, tasksShow } from './commands/review.js';
import { DEFAULT_URL, type Io } from './context.js';
import { CliError, UsageError } from './errors.js';

/** Each command's usage lines, for `tollgate --help` and `tollgate <command> --help`. */
export const COMMANDS: Record<string, string> = {
  apply: `  tollgate apply -f tollgate.yaml [--dry-run]       configuration as code: shows the plan, applies it`,
  mcp: `  tollgate mcp import URL --boundary ID [--intent I]... [--default-ttl S --max-ttl S] [--dry-run]
                                                     writes the boundary for an MCP server's tools: shows the plan, applies it`,
  leases: `  tollgate leases ls [--task ID --workload ID --boundary ID --tool AUD --subject S --action A --state S
                      --since T --until T --limit N --all]`,
  decisions: `  tollgate decisions ls [--outcome permit|deny|pending, and the same filters as leases ls]`,
  tasks: `  tollgate tasks show TASK_ID                        a task's timeline`,
  revoke: `  tollgate revoke lease|task|workload ID [--reason TEXT]`,
  approvals: `  tollgate approvals ls [--status pending|approved|denied|used|expired|revoked|all]
  tollgate approvals approve|deny APPROVAL_ID --reason TEXT`,
  audit: `  tollgate audit verify                              exit 4 if the chain is broken`,
  export: `  tollgate export [--since T --until T] [--format jsonl|csv]`,
  workloads: `  tollgate workloads ls
  tollgate workloads put WORKLOAD_ID -f workload.json   the body of PUT /v1/admin/workloads/{id} (JSON or YAML, - for stdin)
  tollgate workloads delete WORKLOAD_ID              disables it, revoking its tasks and leases`,
  'api-keys': `  tollgate api-keys create --role admin|reviewer|resource_server [--audience TOOL] [--label TEXT]
                          [--jwks FILE]              prints the key once, alone on stdout; --jwks (resource_server only):
                                                     public keys (a JWK Set or one JWK, JSON or YAML) for private_key_jwt
  tollgate api-keys ls
  tollgate api-keys revoke KEY_ID`,
  keys: `  tollgate keys ls                                   the signing keys (next, active *, retired)
  tollgate keys rotate                               rotate now: the next key signs from now on`,
  profile: `  tollgate profile add NAME --url URL --key-file PATH [--default]
                                                     saves the broker and its key (--key-file - reads stdin) in the
                                                     profile file (0600); the first profile added is the default
  tollgate profile ls | use NAME | rm NAME`,
  simulate: `  tollgate simulate --workload ID --intent I --subject S --boundary ID --action A
                    [--resource R] [--params JSON] [--purpose TEXT]
  tollgate simulate -f request.json                  the body of POST /v1/admin/simulate (flags replace its fields)
                                                     the decision as it would be now; writes nothing`,
};

const OPTIONS = `Every command: --url URL, --profile NAME, --json (machine-readable output), --help.
The broker and the API key (admin, or reviewer for the read-only commands), first to last: the
profile named by --profile or TOLLGATE_PROFILE; else a key from --key-file PATH (a file holding the
key alone), TOLLGATE_KEY or TOLLGATE_KEY_FILE, sent to --url, TOLLGATE_URL or ${DEFAULT_URL}; else
the default profile. --url replaces a profile's URL. Profiles live in TOLLGATE_CONFIG (default
~/.config/tollgate/config.json), written 0600 and refused when others may read it. --key KEY works
but warns, since the process list (ps) and shell history show it. Times (--since, --until):
2026-11-24 (a UTC day), 2026-11-24T09:00:00Z, or a time ago: 30m, 12h, 7d, 2w.

Exit status: 0 ok, 1 the API refused (or not found), 2 usage error, 3 cannot reach the broker,
4 audit verify found the chain broken.
`;

export const USAGE = `tollgate: the command line for Tollgate admins and reviewers

Usage:
${Object.values(COMMANDS).join('\n')}
  tollgate --version
  tollgate <command> --help

${OPTIONS}`;

/** One command's usage: its lines, then what every command takes. */
function commandUsage(name: string): string {
  return `Usage:\n${COMMANDS[name]}\n\n${OPTIONS}`;
}

/** The package's version, from its own package.json (dist/main.js sits one folder below it). */
function version(): string {
  const manifest = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return manifest.version;
}

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
  if (first === 'help' && second !== undefined && Object.hasOwn(COMMANDS, second)) {
    io.stdout.write(commandUsage(second));
    return 0;
  }
  if (first === undefined || first === '--help' || first === '-h' || first === 'help') {
    io.stdout.write(USAGE);
    return first === undefined ? 2 : 0;
  }
  if (first === '--version' || first === '-V' || first === 'version') {
    io.stdout.write(`tollgate ${version()}\n`);
    return 0;
  }
  if (argv.includes('--help') || argv.includes('-h')) {
    io.stdout.write(Object.hasOwn(COMMANDS, first) ? commandUsage(first) : USAGE);
    return 0;
  }
  switch (first) {
    case 'apply':
      return apply(io, argv.slice(1));
    case 'mcp':
      return mcp(io, argv.slice(1));
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
    case 'workloads':
      return workloads(io, argv.slice(1));
    case 'api-keys':
      return apiKeys(io, argv.slice(1));
    case 'keys':
      return signingKeys(io, argv.slice(1));
    case 'simulate':
      return simulate(io, argv.slice(1));
    case 'profile':
      return profiles(io, argv.slice(1));
    default:
      throw new UsageError(`unknown command "${first}"`);
  }
}

function unknown(command: string, verb: string | undefined, expected: string): never {
  throw new UsageError(`${command}: expected ${expected}${verb === undefined ? '' : `, got "${verb}"`}`);
}
