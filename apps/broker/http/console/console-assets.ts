import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** One file of the review console, read once at start: the console is three small files. */
export interface ConsoleAsset {
  body: Buffer;
  contentType: string;
}

export const CONSOLE_FILES = {
  'index.html': 'text/html; charset=utf-8',
  'console.css': 'text/css; charset=utf-8',
  'console.js': 'text/javascript; charset=utf-8',
} as const;

export type ConsoleFile = keyof typeof CONSOLE_FILES;

/**
 * Where the console's files are. The same compiled code runs from sources (vitest: apps/broker/http/console)
 * and from dist (npm start: dist/apps/broker/http/console, where `npm run build` copies apps/console beside
 * it); a checkout run with a bare `tsc` still has apps/console at its root. So: the nearest
 * `apps/console` holding every file, walking up from this module.
 */
export function findConsoleDir(from: string = dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, 'apps', 'console');
    if (Object.keys(CONSOLE_FILES).every((file) => existsSync(join(candidate, file)))) return candidate;
    if (dirname(dir) === dir) break;
  }
  throw new Error(`the review console's files (apps/console/${Object.keys(CONSOLE_FILES).join(', ')}) were not found above ${from}`);
}

export function loadConsoleAssets(dir: string = findConsoleDir()): Record<ConsoleFile, ConsoleAsset> {
  const assets = {} as Record<ConsoleFile, ConsoleAsset>;
  for (const [file, contentType] of Object.entries(CONSOLE_FILES) as [ConsoleFile, string][]) {
    assets[file] = { body: readFileSync(join(dir, file)), contentType };
  }
  return assets;
}

/**
 * The console's own scripts and styles only: no inline script or style, no other origin, no
 * framing, no forms posted anywhere, no plugins. The page talks to this origin's API with fetch.
 */
export const CONSOLE_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

export const CONSOLE_HEADERS: Record<string, string> = {
  'content-security-policy': CONSOLE_CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'permissions-policy': 'camera=(), microphone=(), geolocation=(), payment=()',
  // Small files, read at start: always revalidate, so an upgraded broker never serves a stale script.
  'cache-control': 'no-cache',
};
