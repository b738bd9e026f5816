import { readFileSync, statSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { BrokerApi } from './api.js';
import { UsageError } from './errors.js';

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

  /** The broker named by --url, else TOLLGATE_URL (default: the broker's own default), with the key of {@link apiKey}. */
  api(): BrokerApi {
    const url = (this.option('url') ?? this.io.env.TOLLGATE_URL ?? DEFAULT_URL).trim().replace(/\/+$/, '');
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new UsageError(`--url / TOLLGATE_URL: "${url}" is not a URL`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new UsageError('--url / TOLLGATE_URL: must be an http(s) URL');
    return new BrokerApi(url, this.apiKey());
  }

  /**
   * The API key: --key-file PATH, else TOLLGATE_KEY, else TOLLGATE_KEY_FILE (a path, as the broker's
   * own *_FILE settings). --key KEY still works but warns: a command line is visible to every user
   * of the machine (`ps`, /proc) and stays in shell history, where the environment and a file do not.
   */
  private apiKey(): string {
    const onArgv = this.option('key');
    const file = this.option('key-file');
    if (onArgv !== undefined && file !== undefined) throw new UsageError('--key and --key-file: give one of them');
    let key: string;
    if (file !== undefined) key = this.readKeyFile(file, '--key-file');
    else if (onArgv !== undefined) {
      this.io.stderr.write(
        'tollgate: warning: --key puts the key in the process list (ps) and shell history; prefer TOLLGATE_KEY or --key-file\n',
      );
      key = onArgv.trim();
    } else if ((this.io.env.TOLLGATE_KEY ?? '').trim() !== '') key = this.io.env.TOLLGATE_KEY!.trim();
    else if ((this.io.env.TOLLGATE_KEY_FILE ?? '').trim() !== '')
      key = this.readKeyFile(this.io.env.TOLLGATE_KEY_FILE!.trim(), 'TOLLGATE_KEY_FILE');
    else throw new UsageError('no API key: set TOLLGATE_KEY (or TOLLGATE_KEY_FILE, or pass --key-file) to an admin or reviewer key');
    if (key === '') throw new UsageError(`${file !== undefined ? '--key-file' : '--key'}: the key is empty`);
    return key;
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
