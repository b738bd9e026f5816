import { execFile } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

/**
 * Lint and format are part of `npm test`: ESLint (typescript-eslint, eslint.config.js) finds bugs,
 * Prettier (.prettierrc.json) decides the layout. `npm run lint` runs the same two; `npm run format`
 * rewrites the layout.
 */

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const run = promisify(execFile);

async function tool(bin: string, args: string[]): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [join(ROOT, 'node_modules', bin), ...args], {
      cwd: ROOT,
      maxBuffer: 64 * 1024 * 1024,
    });
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof failed.code === 'number' ? failed.code : 1, output: (failed.stdout ?? '') + (failed.stderr ?? '') };
  }
}

describe('lint and format', () => {
  it('ESLint reports no problem', async () => {
    const { code, output } = await tool('eslint/bin/eslint.js', ['--max-warnings', '0', '.']);
    expect(output.trim()).toBe('');
    expect(code).toBe(0);
  }, 120_000);

  it('every file is formatted as Prettier would', async () => {
    const { code, output } = await tool('prettier/bin/prettier.cjs', ['--check', '--log-level', 'warn', '.']);
    expect(output.trim()).toBe('');
    expect(code).toBe(0);
  }, 120_000);
});
