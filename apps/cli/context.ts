import { readFileSync, statSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { BrokerApi } from './api.js';
import { UsageError } from './errors.js';
import { profilePath, readProfiles, type Profile } from './profiles.js';

/** Where the CLI writes and what it reads from its environment: tests run it as a real process. */
export interface Io {
  env: Record<string, string | undefined>;
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** Options every command takes. */
export const GLOBAL_OPTIONS = {
  url: { type: 'string' },
  key: { type: 'string' },
  'key-file': { type: 'string' },
  profile: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies Options;

export const DEFAULT_URL = 'http://127.0.0.1:8080';

/** What a command is run with. */
export interface CommandRun<O extends Options> {
  /** The command words, for messages (`workloads put`). */
  name: string;
  io: Io;
  /** The arguments after the command words. */
  args: string[];
  /** The command's own options, besides {@link GLOBAL_OPTIONS}. */
  options: O;
  /** "Now" for relative times (--since 1h); the clock's by default. */
  now?: Date;
}

/** One command's run: its parsed options and positionals, the broker, and the output. */
export class Command<O extends Options> {
  readonly name: string;
  readonly io: Io;
  readonly now: Date;
  readonly values: Record<string, string | boolean | string[] | undefined>;
  readonly positionals: string[];

  constructor({ name, io, args, options, now = new Date() }: CommandRun<O>) {
    this.name = name;
    this.io = io;
    this.now = now;
    try {
      const parsed = parseArgs({ args, options: { ...GLOBAL_OPTIONS, ...options }, allowPositionals: true, strict: true });
      this.values = parsed.values as Record<string, string | boolean | string[] | undefined>;
      this.positionals = parsed.positionals;
    } catch (error) {
      // parseArgs names the option in its message; the code (ERR_PARSE_ARGS_*) says nothing more.
      throw new UsageError(`${name}: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`);
    }
  }

  get json(): boolean {
    return this.values.json === true;
  }

  /** The string value of an option, or undefined. */
  option(name: string): string | undefined {
    const value = this.values[name];
    return typeof value === 'string' ? value : undefined;
  }

  /** The values of a repeatable option (`multiple: true`), in the order given; [] when absent. */
  list(name: string): string[] {
    const value = this.values[name];
    return Array.isArray(value) ? value : typeof value === 'string' ? [value] : [];
  }

  flag(name: string): boolean {
    return this.values[name] === true;
  }

  /** Exactly `count` positionals after the command words, named for the error. */
  expectPositionals(...names: string[]): string[] {
    if (this.positionals.length !== names.length) {
      const wanted = names.length === 0 ? 'no arguments' : names.map((n) => `<${n}>`).join(' ');
      throw new UsageError(
        `${this.name}: expected ${wanted}, got ${this.positionals.length === 0 ? 'none' : this.positionals.map((p) => JSON.stringify(p)).join(' ')}`,
      );
    }
    return this.positionals;
  }

  /** The broker to call, with its key: see {@link target}. */
  api(): BrokerApi {
    const target = this.target();
    const url = target.url.trim().replace(/\/+$/, '');
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new UsageError(`--url / TOLLGATE_URL: "${url}" is not a URL`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new UsageError('--url / TOLLGATE_URL: must be an http(s) URL');
    return new BrokerApi(url, target.key);
  }

  /**
   * Where to send, and with which key. A profile's URL and key travel together (only --url, said
   * on purpose, replaces its URL), so a key is never sent to a broker it was not saved for:
   * 1. a profile named by --profile or TOLLGATE_PROFILE (a key flag may replace its key);
   * 2. else a key from --key-file, --key, TOLLGATE_KEY or TOLLGATE_KEY_FILE, sent to --url,
   *    TOLLGATE_URL or the default URL, as before profiles existed;
   * 3. else the profile file's default profile; a TOLLGATE_URL naming another broker is refused
   *    rather than guessed at (which of the two did the user mean?).
   */
  private target(): { url: string; key: string } {
    const flagUrl = this.option('url');
    const named = this.option('profile') ?? nonBlank(this.io.env.TOLLGATE_PROFILE);
    if (named !== undefined) {
      const profile = this.profile(named);
      return { url: flagUrl ?? profile.url, key: this.keyFromFlags() ?? profile.key };
    }
    const key = this.keyFromFlags() ?? this.keyFromEnvironment();
    if (key !== undefined) return { url: flagUrl ?? nonBlank(this.io.env.TOLLGATE_URL) ?? DEFAULT_URL, key };
    const path = profilePath(this.io.env);
    const file = readProfiles(path);
    const fallback = file?.default === undefined ? undefined : { name: file.default, ...file.profiles[file.default]! };
    if (fallback === undefined)
      throw new UsageError(
        'no API key: add a profile (tollgate profile add NAME --url URL --key-file PATH), or set TOLLGATE_KEY (or TOLLGATE_KEY_FILE, or pass --key-file) to an admin or reviewer key',
      );
    const envUrl = nonBlank(this.io.env.TOLLGATE_URL);
    if (flagUrl === undefined && envUrl !== undefined && envUrl.replace(/\/+$/, '') !== fallback.url)
      throw new UsageError(
        `TOLLGATE_URL is ${envUrl}, but the key would come from the default profile ${fallback.name} (${fallback.url}): pass --profile NAME, or --url, or set TOLLGATE_KEY for that broker`,
      );
    return { url: flagUrl ?? fallback.url, key: fallback.key };
  }

  /**
   * --key-file PATH, or --key KEY, which works but warns: a command line is visible to every user
   * of the machine (`ps`, /proc) and stays in shell history, where a profile, the environment and
   * a file do not.
   */
  private keyFromFlags(): string | undefined {
    const onArgv = this.option('key');
    const file = this.option('key-file');
    if (onArgv !== undefined && file !== undefined) throw new UsageError('--key and --key-file: give one of them');
    if (file !== undefined) return this.readKeyFile(file, '--key-file');
    if (onArgv === undefined) return undefined;
    this.io.stderr.write(
      'tollgate: warning: --key puts the key in the process list (ps) and shell history; prefer a profile, TOLLGATE_KEY or --key-file\n',
    );
    if (onArgv.trim() === '') throw new UsageError('--key: the key is empty');
    return onArgv.trim();
  }

  private keyFromEnvironment(): string | undefined {
    const key = nonBlank(this.io.env.TOLLGATE_KEY);
    if (key !== undefined) return key;
    const file = nonBlank(this.io.env.TOLLGATE_KEY_FILE);
    return file === undefined ? undefined : this.readKeyFile(file, 'TOLLGATE_KEY_FILE');
  }

  /** A profile named on purpose: it must exist. */
  private profile(name: string): Profile {
    const path = profilePath(this.io.env);
    const file = readProfiles(path);
    if (file === undefined || !Object.hasOwn(file.profiles, name))
      throw new UsageError(
        `--profile / TOLLGATE_PROFILE: no profile "${name}" in ${path}${file === undefined ? ' (no such file)' : `; it has ${Object.keys(file.profiles).join(', ') || 'none'}`}`,
        false,
      );
    return file.profiles[name]!;
  }

  /** A key file holds the key alone (surrounding whitespace and a final newline are ignored). */
  private readKeyFile(path: string, source: string): string {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (error) {
      throw new UsageError(`${source}: cannot read ${path}: ${(error as { code?: string }).code ?? String(error)}`, false);
    }
    // A key others can read is as good as leaked: say so (the key still works, as ssh's would not).
    const mode = statSync(path).mode & 0o777;
    if (process.platform !== 'win32' && (mode & 0o077) !== 0) {
      this.io.stderr.write(
        `tollgate: warning: ${path} is readable by other users (mode ${mode.toString(8).padStart(4, '0')}): chmod 600 it\n`,
      );
    }
    const key = text.trim();
    if (key === '') throw new UsageError(`${source}: ${path} is empty`, false);
    if (/\s/.test(key)) throw new UsageError(`${source}: ${path} must hold the key alone, on one line`, false);
    return key;
  }

  print(text = ''): void {
    this.io.stdout.write(text.endsWith('\n') || text === '' ? text || '\n' : `${text}\n`);
  }

  printJson(value: unknown): void {
    this.io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  }
}

function nonBlank(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}
