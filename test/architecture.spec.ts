import { execFile } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

/**
 * The layers of docs/architecture.md, checked by dependency-cruiser with the project's own rules
 * (.dependency-cruiser.cjs). The second case proves the rules bite: a small tree with one forbidden
 * edge of each kind must be reported, edge by edge.
 */

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CRUISER = join(ROOT, 'node_modules/dependency-cruiser/bin/dependency-cruise.mjs');
const CONFIG = join(ROOT, '.dependency-cruiser.cjs');

interface Violation {
  rule: { name: string };
  from: string;
  to: string;
}

async function violations(cwd: string): Promise<string[]> {
  const run = promisify(execFile);
  // Exit status is the number of errors: read the report either way.
  const { stdout } = await run(process.execPath, [CRUISER, '--config', CONFIG, '--output-type', 'json', 'libs', 'apps', 'packages'], {
    cwd,
    maxBuffer: 64 * 1024 * 1024,
  }).catch((error: { stdout?: string }) => ({ stdout: error.stdout ?? '' }));
  const report = JSON.parse(stdout) as { summary: { violations: Violation[] } };
  return report.summary.violations.map((v) => `${v.rule.name}: ${v.from} → ${v.to}`).sort();
}

describe('architecture', () => {
  it('has no forbidden import, no cycle and no reach past an entry file in libs/, apps/ and packages/', async () => {
    expect(await violations(ROOT)).toEqual([]);
  }, 60_000);

  it('reports a forbidden layer edge, a reach past an entry file, a cycle and a client importing the server', async () => {
    expect(await violations(join(ROOT, 'test/fixtures/architecture'))).toEqual([
      'clients-import-no-server-code: apps/cli/main.ts → libs/leases/index.ts',
      'clients-import-no-server-code: libs/sdk/client.ts → libs/leases/index.ts',
      'clients-import-no-server-code: packages/verifier/verify.ts → libs/leases/index.ts',
      'layer-keys: libs/keys/key.ts → libs/leases/lease.ts',
      'lib-entry-file: libs/keys/key.ts → libs/leases/lease.ts',
      'no-circular: libs/db/a.ts → libs/db/b.ts',
    ]);
  }, 60_000);
});
