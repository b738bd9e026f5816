import { chmodSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { UsageError } from './errors.js';

/**
 * Profiles: a broker's URL and an API key under a name, in one file of the user's, so the key
 * never has to be typed where `ps` and shell history see it. The file holds keys, so it is
 * written 0600 (its folder 0700) and, as ssh does with a private key, refused when others may read
 * it: a key that others could read is as good as leaked, and a warning scrolls by unread.
 *
 * Where: TOLLGATE_CONFIG, else $XDG_CONFIG_HOME/tollgate/config.json, else
 * ~/.config/tollgate/config.json.
 */

export interface Profile {
  url: string;
  key: string;
}

export interface ProfileFile {
  /** The profile used when none is named (--profile, TOLLGATE_PROFILE). */
  default?: string;
  profiles: Record<string, Profile>;
}

/** A profile's name: what a person types, and safe in a table. */
export const PROFILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function profilePath(env: Record<string, string | undefined>): string {
  const explicit = env.TOLLGATE_CONFIG?.trim();
  if (explicit) return explicit;
  const base = env.XDG_CONFIG_HOME?.trim() || join(env.HOME?.trim() || homedir(), '.config');
  return join(base, 'tollgate', 'config.json');
}

/** The profile file, or undefined when there is none. A file others may read, or a malformed one, is refused. */
export function readProfiles(path: string): ProfileFile | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code === 'ENOENT') return undefined;
    throw new UsageError(`profiles: cannot read ${path}: ${code ?? String(error)}`, false);
  }
  refuseOpenFile(path);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new UsageError(`profiles: ${path} is not JSON`, false);
  }
  return checked(parsed, path);
}

/** Writes the file whole: to a 0600 file beside it, then renamed over it, so a reader never sees half of it. */
export function writeProfiles(path: string, file: ProfileFile): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const temporary = `${path}.${process.pid}.tmp`;
  // A new file ('wx'), so it is 0600 from its first byte: a stale one of a crashed run could be 0644.
  rmSync(temporary, { force: true });
  writeFileSync(temporary, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  chmodSync(temporary, 0o600);
  renameSync(temporary, path);
}

function refuseOpenFile(path: string): void {
  if (process.platform === 'win32') return;
  const mode = statSync(path).mode & 0o777;
  if ((mode & 0o077) !== 0)
    throw new UsageError(
      `profiles: ${path} holds API keys and is readable by other users (mode ${mode.toString(8).padStart(4, '0')}): chmod 600 it, and rotate its keys if others could read them`,
      false,
    );
}

function checked(parsed: unknown, path: string): ProfileFile {
  const bad = (what: string) => new UsageError(`profiles: ${path}: ${what}`, false);
  if (!isObject(parsed) || !isObject(parsed.profiles)) throw bad('must hold {"profiles": {NAME: {"url", "key"}}}');
  const profiles: Record<string, Profile> = {};
  for (const [name, profile] of Object.entries(parsed.profiles)) {
    if (!PROFILE_NAME.test(name)) throw bad(`profile name "${name}" must be letters, digits, ".", "_" or "-"`);
    if (!isObject(profile) || typeof profile.url !== 'string' || typeof profile.key !== 'string' || profile.key.trim() === '')
      throw bad(`profile ${name} must have a "url" and a "key"`);
    profiles[name] = { url: profile.url, key: profile.key.trim() };
  }
  if (parsed.default !== undefined && (typeof parsed.default !== 'string' || !Object.hasOwn(profiles, parsed.default)))
    throw bad('"default" must name one of its profiles');
  return { ...(parsed.default === undefined ? {} : { default: parsed.default }), profiles };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
