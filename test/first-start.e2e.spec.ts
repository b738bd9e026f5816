import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from './support/broker.js';
import { call } from './support/http.js';

/**
 * `npm start` as a container runs it: the built broker with stdout piped to a log, on a fresh
 * embedded data folder. The generated admin key must not reach that log.
 */

const ROOT = resolve(import.meta.dirname, '..');
const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe('first start without a terminal', () => {
  it('writes the generated admin key to a 0600 file in the data folder and logs only where it is', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'tollgate-first-start-'));
    dirs.push(dataDir);
    const port = await freePort();
    const child = spawn(process.execPath, [join(ROOT, 'dist/apps/broker/main.js')], {
      cwd: ROOT,
      env: { PATH: process.env.PATH, TOLLGATE_DATA_DIR: dataDir, PORT: String(port), TOLLGATE_LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let log = '';
    child.stdout.on('data', (chunk: Buffer) => (log += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (log += chunk.toString()));
    try {
      await new Promise<void>((done, fail) => {
        const timer = setTimeout(() => fail(new Error(`no start within 60 s:\n${log}`)), 60_000);
        child.stdout.on('data', () => {
          if (log.includes('Tollgate is serving')) {
            clearTimeout(timer);
            done();
          }
        });
        child.once('exit', (code) => fail(new Error(`exited with ${code}:\n${log}`)));
      });
      const file = join(dataDir, 'admin-key');
      expect(log).toContain(`written to ${file} (mode 0600)`);
      expect(statSync(file).mode & 0o777).toBe(0o600);
      const key = readFileSync(file, 'utf8').trim();
      expect(key).toMatch(/^tgadm_[A-Za-z0-9_-]{43}$/);
      expect(log).not.toContain(key);
      expect(log).not.toMatch(/tgadm_[A-Za-z0-9_-]{20}/);
      const leases = await call(`http://127.0.0.1:${port}`, 'GET', '/v1/leases', { token: key });
      expect(leases.status).toBe(200);
    } finally {
      child.kill('SIGTERM');
      await new Promise((done) => (child.exitCode === null ? child.once('exit', done) : done(undefined)));
    }
  }, 90_000);
});
