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
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies Options;

export const DEFAULT_URL = 'http://127.0.0.1:8080';

/** One command's run: its parsed options and positionals, the broker, and the output. */
export class Command<O extends Options> {
  readonly values: Record<string, string | boolean | undefined>;
  readonly positionals: string[];

  constructor(
    readonly name: string,
    readonly io: Io,
    args: string[],
    options: O,
    readonly now: Date = new Date(),
  ) {
    try {
      const parsed = parseArgs({ args, options: { ...GLOBAL_OPTIONS, ...options }, allowPositionals: true, strict: true });
      this.values = parsed.values as Record<string, string | boolean | undefined>;
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

  flag(name: string): boolean {
    return this.values[name] === true;
  }

  /** Exactly `count` positionals after the command words, named for the error. */
  expectPositionals(...names: string[]): string[] {
    if (this.positionals.length !== names.length) {
      const wanted = names.length === 0 ? 'no arguments' : names.map((n) => `<${n}>`).join(' ');
      throw new UsageError(`${this.name}: expected ${wanted}, got ${this.positionals.length === 0 ? 'none' : this.positionals.map((p) => JSON.stringify(p)).join(' ')}`);
    }
    return this.positionals;
  }

  /** The broker named by --url/--key, else TOLLGATE_URL/TOLLGATE_KEY (the URL defaults to the broker's own default). */
  api(): BrokerApi {
    const url = (this.option('url') ?? this.io.env.TOLLGATE_URL ?? DEFAULT_URL).trim().replace(/\/+$/, '');
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new UsageError(`--url / TOLLGATE_URL: "${url}" is not a URL`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new UsageError('--url / TOLLGATE_URL: must be an http(s) URL');
    const key = (this.option('key') ?? this.io.env.TOLLGATE_KEY ?? '').trim();
    if (key === '') throw new UsageError('no API key: set TOLLGATE_KEY (or pass --key) to an admin or reviewer key');
    return new BrokerApi(url, key);
  }

  print(text = ''): void {
    this.io.stdout.write(text.endsWith('\n') || text === '' ? text || '\n' : `${text}\n`);
  }

  printJson(value: unknown): void {
    this.io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  }
}
