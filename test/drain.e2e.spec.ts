import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from './support/broker.js';
import { connect, freshDatabase, type TestDatabase } from './support/database.js';
import { call } from './support/http.js';
import { putBoundary, registerBot } from './support/scenario.js';
import { readEvents, type SseEvent } from './support/sse.js';

/**
 * SIGTERM on a built broker process, as Kubernetes or a rolling restart sends it: readiness turns
 * 503 `draining` at once while the replica still serves (each answer saying Connection: close) for
 * TOLLGATE_SHUTDOWN_DELAY_MS; then the listener closes, a request in flight still finishes, an open
 * event stream ends after its last event, and the process exits 0.
 */

const ROOT = resolve(import.meta.dirname, '..');
const DELAY_MS = 1_500;
// One admin key and KEK for the file: every start opens the signing keys the first one sealed.
const ADMIN_KEY = `drain-admin-${randomBytes(24).toString('hex')}`;
const KEK = randomBytes(32).toString('base64');

let db: TestDatabase;
let child: ChildProcess | undefined;
let output = '';

beforeAll(async () => {
  db = await freshDatabase('postgres');
});
afterAll(async () => {
  child?.kill('SIGKILL');
  await db?.drop();
});

async function startBrokerProcess(
  env: Record<string, string> = {},
): Promise<{ url: string; adminKey: string; exit: Promise<number | null> }> {
  const port = await freePort();
  const adminKey = ADMIN_KEY;
  output = '';
  const started = spawn(process.execPath, [join(ROOT, 'dist/apps/broker/main.js')], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH,
      PORT: String(port),
      DATABASE_URL: db.databaseUrl!,
      TOLLGATE_DATA_DIR: db.dataDir,
      TOLLGATE_ADMIN_KEY: adminKey,
      TOLLGATE_KEK: KEK,
      TOLLGATE_LOG_LEVEL: 'info',
      TOLLGATE_SHUTDOWN_DELAY_MS: String(DELAY_MS),
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child = started;
  started.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  started.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exit = new Promise<number | null>((done) => started.once('exit', (code) => done(code)));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (started.exitCode !== null) throw new Error(`broker exited while starting:\n${output}`);
    const ready = await fetch(`${url}/readyz`).then(
      (response) => response.status,
      () => 0,
    );
    if (ready === 200) return { url, adminKey, exit };
    if (Date.now() > deadline) throw new Error(`broker not ready within 60 s:\n${output}`);
    await new Promise((done) => setTimeout(done, 100));
  }
}

describe('SIGTERM drains the replica', () => {
  it('turns readiness 503 at once, serves through the delay with Connection: close, finishes the request in flight, ends the stream after its last event, exits 0', async () => {
    const { url, adminKey, exit } = await startBrokerProcess();
    const broker = { url, adminKey };
    await putBoundary(broker, 'crm-orders');
    const bot = await registerBot(broker);
    const done = await bot.openTask();
    expect((await bot.credential(done, { boundary: 'crm-orders', action: 'orders:read' })).status).toBe(201);

    // An event stream, open before the signal.
    const controller = new AbortController();
    const streamResponse = await fetch(`${url}/v1/events`, { headers: { authorization: `Bearer ${adminKey}` }, signal: controller.signal });
    expect(streamResponse.status).toBe(200);
    const received: SseEvent[] = [];
    let streamEnded = false;
    const reading = readEvents(streamResponse.body!, (event) => received.push(event)).then(() => (streamEnded = true));
    await new Promise((done) => setTimeout(done, 300)); // the stream starts from "now"

    // A credential request held in flight: the decision row it writes waits for a table lock.
    const locker = await connect(db.databaseUrl!);
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE decisions IN ACCESS EXCLUSIVE MODE');
    const held = await bot.openTask();
    const inFlight = bot.credential(held, { boundary: 'crm-orders', action: 'orders:read' });
    await waitFor(async () => {
      // Inside its transaction the locker would see the activity as it was at its first look.
      await locker.query('SELECT pg_stat_clear_snapshot()');
      const { rows } = await locker.query(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()`,
      );
      return (rows[0] as { n: number }).n > 0;
    }, 'the credential request to wait for the lock');

    const signalled = Date.now();
    child!.kill('SIGTERM');

    // Readiness flips at once, in the documented shape.
    let readiness = await call(url, 'GET', '/readyz');
    for (let i = 0; readiness.status === 200 && i < 20; i++) readiness = await call(url, 'GET', '/readyz');
    expect(readiness.status).toBe(503);
    expect(readiness.body).toEqual({ status: 'unavailable', database: 'postgres', reason: 'draining' });
    expect(Date.now() - signalled).toBeLessThan(DELAY_MS / 2);

    // During the delay the replica still serves, and asks each client to close its connection.
    const completed = await bot.call('POST', `/v1/tasks/${done}/complete`);
    expect(completed.status).toBe(200);
    expect(completed.headers.get('connection')).toBe('close');
    const jwks = await call(url, 'GET', '/.well-known/jwks.json');
    expect(jwks.status).toBe(200);
    await waitFor(async () => received.some((event) => event.event === 'task.ended'), 'the stream to carry the completion');

    // After the delay: the listener is closed, the stream ended cleanly, the process still runs.
    await new Promise((done) => setTimeout(done, DELAY_MS + 300 - (Date.now() - signalled)));
    await expect(fetch(`${url}/healthz`)).rejects.toThrow();
    await reading;
    expect(streamEnded).toBe(true);
    expect(child!.exitCode).toBeNull();

    // The request in flight still gets its credential, then the process exits 0.
    await locker.query('COMMIT');
    await locker.end();
    const answer = await inFlight;
    expect(answer.status).toBe(201);
    expect(await exit).toBe(0);

    // The stream's last event is the log's last: a client resuming with it elsewhere misses nothing.
    const check = await connect(db.databaseUrl!);
    try {
      const { rows } = await check.query('SELECT max(seq)::text AS seq FROM revocation_events');
      expect(received.at(-1)!.id).toBe((rows[0] as { seq: string }).seq);
    } finally {
      await check.end();
    }
    expect(output).toContain('"msg":"drained"');
    expect(output).toContain('"event_streams_ended":1');
    controller.abort();
  }, 60_000);

  it('exits at once on a second signal, and skips the delay on SIGINT', async () => {
    const first = await startBrokerProcess({ TOLLGATE_SHUTDOWN_DELAY_MS: '20000' });
    child!.kill('SIGTERM');
    await waitFor(async () => (await call(first.url, 'GET', '/readyz')).status === 503, 'readiness to flip');
    const sent = Date.now();
    child!.kill('SIGTERM');
    expect(await first.exit).toBe(143);
    expect(Date.now() - sent).toBeLessThan(5_000);

    const second = await startBrokerProcess({ TOLLGATE_SHUTDOWN_DELAY_MS: '20000' });
    const interrupted = Date.now();
    child!.kill('SIGINT');
    expect(await second.exit).toBe(0);
    expect(Date.now() - interrupted).toBeLessThan(10_000);
  }, 120_000);
});

async function waitFor(condition: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}:\n${output}`);
    await new Promise((done) => setTimeout(done, 25));
  }
}
