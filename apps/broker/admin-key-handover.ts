import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/**
 * How the admin key generated at first start reaches the operator. On a terminal it is shown once.
 * Anywhere else stdout is a log (a container, systemd, a CI job) where a key would be kept and
 * shipped far and wide, so it goes to a file only the service's user can read, and the log says where.
 */
export function handOverAdminKey(key: string, options: { dataDir: string; terminal: boolean }): string {
  if (options.terminal) {
    return ['', 'Admin key (shown once; only its hash is stored, so keep it now):', '', `    ${key}`, ''].join('\n') + '\n';
  }
  const dir = resolve(options.dataDir);
  const file = join(dir, 'admin-key');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(file, `${key}\n`, { mode: 0o600 });
  // writeFileSync's mode applies only when it creates the file: an older file keeps its own.
  chmodSync(file, 0o600);
  return (
    [
      '',
      `Admin key generated: written to ${file} (mode 0600), not to this log; only its hash is stored.`,
      '  Read it, keep it elsewhere, then delete the file.',
      '',
    ].join('\n') + '\n'
  );
}
