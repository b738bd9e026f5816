import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CONSOLE_CSP, CONSOLE_FILES, findConsoleDir, loadConsoleAssets } from './console-assets.js';

const made: string[] = [];
afterEach(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A checkout-shaped folder: apps/console with the given files, and an empty dist/apps/broker/http/console. */
function checkout(files: readonly string[] = Object.keys(CONSOLE_FILES)): string {
  const root = mkdtempSync(join(tmpdir(), 'tollgate-console-'));
  made.push(root);
  mkdirSync(join(root, 'apps', 'console'), { recursive: true });
  mkdirSync(join(root, 'dist', 'apps', 'broker', 'http', 'console'), { recursive: true });
  for (const file of files) writeFileSync(join(root, 'apps', 'console', file), `/* ${file} */`);
  return root;
}

describe('findConsoleDir', () => {
  it('finds the sources from the compiled controller in dist when the build did not copy them', () => {
    const root = checkout();
    expect(findConsoleDir(join(root, 'dist', 'apps', 'broker', 'http', 'console'))).toBe(join(root, 'apps', 'console'));
  });

  it('prefers the copy beside the compiled code (the Docker image has dist only)', () => {
    const root = checkout();
    const copy = join(root, 'dist', 'apps', 'console');
    mkdirSync(copy, { recursive: true });
    for (const file of Object.keys(CONSOLE_FILES)) writeFileSync(join(copy, file), 'copied');
    expect(findConsoleDir(join(root, 'dist', 'apps', 'broker', 'http', 'console'))).toBe(copy);
  });

  it('skips a folder missing a file, and says what it looked for when there is none', () => {
    const root = checkout(['index.html']);
    expect(() => findConsoleDir(join(root, 'dist', 'apps', 'broker', 'http', 'console'))).toThrow(
      /apps\/console\/index\.html, console\.css, console\.js/,
    );
  });

  it('finds the real one from this source folder and reads each file with its type', () => {
    const assets = loadConsoleAssets(findConsoleDir());
    expect(assets['index.html'].contentType).toBe('text/html; charset=utf-8');
    expect(assets['console.js'].body.toString('utf8')).toContain('sessionStorage');
  });
});

describe('CONSOLE_CSP', () => {
  it('allows this origin only, no inline code, no framing', () => {
    expect(CONSOLE_CSP).toMatch(/^default-src 'self';/);
    expect(CONSOLE_CSP).toContain("frame-ancestors 'none'");
    expect(CONSOLE_CSP).not.toMatch(/unsafe-|data:|\*/);
  });
});
