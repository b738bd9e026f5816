import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDatabase } from './support/database.js';
import { call } from './support/http.js';
import { introspect, putBoundary, registerBot } from './support/scenario.js';
import { freePort, type TestBroker } from './support/broker.js';

/**
 * Issue 12, finding 3: a broker that dies must come back. The supervisor (compose `restart:
 * unless-stopped`, Kubernetes' restartPolicy) is a loop that starts the process again; here a shell
 * loop runs the broker process (main.ts, from source through the TypeScript loader), the broker is
 * SIGKILLed, and it must serve again with its state, its Cedar children gone with it.
 */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
let db: TestDatabase | undefined;
let supervisor: ChildProcess | undefined;

afterAll(async () => {
  if (supervisor?.pid) {
    const brokers = childrenOf(supervisor.pid);
    supervisor.kill('SIGKILL');
    for (const pid of brokers) kill(pid);
  }
  await db?.drop();
});

function childrenOf(pid: number): number[] {
  try {
    return execFileSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' })
      .split('\n')
      .map(Number)
      .filter((n) => n > 0);
  } catch {
    return [];
  }
}

function kill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {}
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** `log`: the brokers' output, whose end a timeout shows (a broker that exits at once is restarted in a loop). */
async function serving(url: string, timeoutMs: number, log: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await call(url, 'GET', '/healthz').then(
      (response) => response.status === 200,
      () => false,
    );
    if (ok) return;
    if (Date.now() > deadline) {
      const output = existsSync(log) ? readFileSync(log, 'utf8').slice(-2_000) : '(no output)';
      throw new Error(`${url} did not serve within ${timeoutMs} ms; the brokers' output ends:\n${output}`);
    }
    await new Promise((done) => setTimeout(done, 200));
  }
}

describe('a supervised broker', () => {
  it('comes back after SIGKILL with its state, and its Cedar processes die with it', async () => {
    db = await freshDatabase('postgres');
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const adminKey = `test-admin-${randomBytes(24).toString('hex')}`;
    const env = {
      ...process.env,
      DATABASE_URL: db.databaseUrl!,
      TOLLGATE_DATA_DIR: db.dataDir,
      TOLLGATE_ADMIN_KEY: adminKey,
      TOLLGATE_KEK: randomBytes(32).toString('base64'),
      TOLLGATE_LOG_LEVEL: 'error',
      PORT: String(port),
      HOST: '127.0.0.1',
      BROKER_LOG: join(db.dataDir, 'brokers.log'),
    };
    const log = env.BROKER_LOG;
    const broker = `exec node --import ./scripts/ts-loader.mjs apps/broker/main.ts`;
    // The supervisor: start the broker again whenever it exits.
    supervisor = spawn('sh', ['-c', `while :; do (${broker}) >>"$BROKER_LOG" 2>&1; sleep 0.2; done`], { cwd: ROOT, env, stdio: 'ignore' });
    await serving(url, 60_000, log);

    const handle = { url, adminKey } as TestBroker;
    await putBoundary(handle, 'crm-orders', {
      policy: 'permit(principal, action, resource) when { context.params has owner && context.params.owner == "alice" };',
    });
    const bot = await registerBot(handle);
    const taskId = await bot.openTask();
    const issued = await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:read', params: { owner: 'alice' } });
    expect(issued.status).toBe(201);

    const [first] = childrenOf(supervisor.pid!);
    expect(first).toBeGreaterThan(0);
    const cedarChildren = childrenOf(first!);
    expect(cedarChildren.length).toBeGreaterThan(0);
    process.kill(first!, 'SIGKILL');
    await serving(url, 60_000, log);
    const [second] = childrenOf(supervisor.pid!);
    expect(second).not.toBe(first);
    // The old broker's Cedar processes saw it go (their IPC channel closed) and exited.
    await new Promise((done) => setTimeout(done, 500));
    for (const pid of cedarChildren) expect(alive(pid)).toBe(false);

    expect((await introspect(handle, issued.body.credential.access_token)).active).toBe(true);
    expect((await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:read', params: { owner: 'bob' } })).status).toBe(403);
    expect((await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:read', params: { owner: 'alice' } })).status).toBe(201);
  }, 150_000);
});
