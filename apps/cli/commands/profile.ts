import { readFileSync, statSync } from 'node:fs';
import { Command, type Io } from '../context.js';
import { UsageError } from '../errors.js';
import { PROFILE_NAME, profilePath, readProfiles, writeProfiles, type ProfileFile } from '../profiles.js';
import { table } from '../table.js';

/**
 * `tollgate profile add NAME --url URL --key-file PATH [--default] | ls | use NAME | rm NAME`: the
 * profile file (see profiles.ts). The key is read from a file (or stdin, `--key-file -`) and copied
 * into the profile; it is never taken on the command line and never printed.
 */
export async function profiles(io: Io, args: string[]): Promise<number> {
  const [verb, ...rest] = args;
  const path = profilePath(io.env);
  switch (verb) {
    case 'add': {
      const command = new Command({ name: 'profile add', io, args: rest, options: { default: { type: 'boolean' } } });
      const [name] = command.expectPositionals('name');
      if (!PROFILE_NAME.test(name!))
        throw new UsageError(`profile add: <name> must be 1 to 64 letters, digits, ".", "_" or "-", starting with a letter or digit`);
      if (command.option('key') !== undefined)
        throw new UsageError(
          'profile add: --key is not taken (the process list would show it): use --key-file PATH, or --key-file - for stdin',
        );
      const url = command.option('url');
      if (url === undefined) throw new UsageError('profile add: --url is required');
      if (!isHttpUrl(url)) throw new UsageError(`profile add: --url "${url}" must be an http(s) URL`);
      const keyFile = command.option('key-file');
      if (keyFile === undefined) throw new UsageError('profile add: --key-file is required (a file holding the key alone, or - for stdin)');
      const key = readKey(io, keyFile);
      const file: ProfileFile = readProfiles(path) ?? { profiles: {} };
      const replaced = Object.hasOwn(file.profiles, name!);
      file.profiles[name!] = { url: url.trim().replace(/\/+$/, ''), key };
      const makeDefault = command.flag('default') || file.default === undefined;
      if (makeDefault) file.default = name!;
      writeProfiles(path, file);
      if (command.json) command.printJson({ name, url: file.profiles[name!]!.url, default: file.default === name, path });
      else
        command.print(
          `${replaced ? 'Replaced' : 'Added'} profile ${name} (${file.profiles[name!]!.url})${makeDefault ? ', the default' : ''}, in ${path}.`,
        );
      return 0;
    }
    case 'ls': {
      const command = new Command({ name: 'profile ls', io, args: rest, options: {} });
      command.expectPositionals();
      const file = readProfiles(path);
      const items = Object.entries(file?.profiles ?? {}).map(([name, profile]) => ({
        name,
        url: profile.url,
        default: file?.default === name,
      }));
      if (command.json) command.printJson({ path, items });
      else if (items.length === 0) command.print(`No profiles (${path}).`);
      else
        command.print(
          table(
            ['PROFILE', 'URL'],
            items.map((p) => [`${p.name}${p.default ? ' *' : ''}`, p.url]),
          ),
        );
      return 0;
    }
    case 'use': {
      const command = new Command({ name: 'profile use', io, args: rest, options: {} });
      const [name] = command.expectPositionals('name');
      const file = existing(path, name!, 'profile use');
      file.default = name!;
      writeProfiles(path, file);
      command.print(`Profile ${name} is the default.`);
      return 0;
    }
    case 'rm': {
      const command = new Command({ name: 'profile rm', io, args: rest, options: {} });
      const [name] = command.expectPositionals('name');
      const file = existing(path, name!, 'profile rm');
      delete file.profiles[name!];
      if (file.default === name) delete file.default;
      writeProfiles(path, file);
      command.print(
        `Removed profile ${name}${file.default === undefined && Object.keys(file.profiles).length > 0 ? '; no profile is the default now (profile use NAME)' : ''}.`,
      );
      return 0;
    }
    default:
      throw new UsageError(`profile: expected add, ls, use or rm${verb === undefined ? '' : `, got "${verb}"`}`);
  }
}

function existing(path: string, name: string, command: string): ProfileFile {
  const file = readProfiles(path);
  if (file === undefined || !Object.hasOwn(file.profiles, name)) throw new UsageError(`${command}: no profile "${name}" in ${path}`, false);
  return file;
}

/** The key alone, from a file (a warning if others may read it: it is about to be copied anyway) or stdin. */
function readKey(io: Io, path: string): string {
  let text: string;
  try {
    text = readFileSync(path === '-' ? 0 : path, 'utf8');
  } catch (error) {
    throw new UsageError(`profile add: --key-file: cannot read ${path}: ${(error as { code?: string }).code ?? String(error)}`, false);
  }
  if (path !== '-' && process.platform !== 'win32' && (statSync(path).mode & 0o077) !== 0)
    io.stderr.write(`tollgate: warning: ${path} is readable by other users: the key is copied into the profile; delete or chmod 600 it\n`);
  const key = text.trim();
  if (key === '') throw new UsageError(`profile add: --key-file: ${path === '-' ? 'stdin' : path} is empty`, false);
  if (/\s/.test(key))
    throw new UsageError(`profile add: --key-file: ${path === '-' ? 'stdin' : path} must hold the key alone, on one line`, false);
  return key;
}

function isHttpUrl(text: string): boolean {
  try {
    const url = new URL(text.trim());
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
}
