import { execFile } from 'node:child_process';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigurationError } from '../libs/errors/errors.js';
import { startBroker, type TestBroker } from './support/broker.js';
import { connect, freshDatabase, runtimeRole, type TestDatabase } from './support/database.js';
import { registerBot, putBoundary } from './support/scenario.js';

/**
 * The migrate step: `tollgate-broker migrate` (the built main.js, as the Kubernetes Job runs it)
 * applies the migrations as the schema owner, and the service runs with TOLLGATE_MIGRATE=off as a
 * user that has no DDL rights at all.
 */

const ROOT = resolve(import.meta.dirname, '..');
const MAIN = join(ROOT, 'dist/apps/broker/main.js');
const run = promisify(execFile);
let db: TestDatabase;
let runtime: { url: string; drop(): Promise<void> } | undefined;
const brokers: TestBroker[] = [];

function migrate(databaseUrl: string) {
  // Exactly the Job's environment: the database URL, nothing else of Tollgate's.
  return run(process.execPath, [MAIN, 'migrate'], { cwd: ROOT, env: { PATH: process.env.PATH, DATABASE_URL: databaseUrl } });
}

beforeAll(async () => {
  db = await freshDatabase('postgres');
});

afterAll(async () => {
  for (const broker of brokers) await broker.stop().catch(() => {});
  await db.drop();
  await runtime?.drop();
});

describe('tollgate-broker migrate and TOLLGATE_MIGRATE=off', () => {
  it('refuses to start an unmigrated database with TOLLGATE_MIGRATE=off, and creates nothing', async () => {
    const error = await startBroker({ db, env: { TOLLGATE_MIGRATE: 'off' } }).then(
      (broker) => {
        brokers.push(broker);
        return undefined;
      },
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ConfigurationError);
    expect((error as ConfigurationError).problems[0]).toMatch(
      /^TOLLGATE_MIGRATE: off, and the database lacks \d+ migration\(s\) of this version .*tollgate-broker migrate/,
    );
    const client = await connect(db.databaseUrl!);
    try {
      const { rows } = await client.query(`SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'public'`);
      expect(rows[0].n).toBe(0);
    } finally {
      await client.end();
    }
  });

  it('migrates as the owner, once, then serves as a user without DDL rights', async () => {
    const first = await migrate(db.databaseUrl!);
    expect(first.stdout).toMatch(/^tollgate-broker migrate: applied \d+: Identity1764115200000, /);
    expect((await migrate(db.databaseUrl!)).stdout).toBe('tollgate-broker migrate: the database is up to date\n');

    // The runtime user: data rights only, granted after the tables exist.
    runtime = await runtimeRole(db);
    const client = await connect(runtime.url);
    try {
      await expect(client.query('CREATE TABLE probe (id int)')).rejects.toThrow(/permission denied/);
    } finally {
      await client.end();
    }

    // With the background loops on: the sweeper, the chainer and the outbox run as this user too.
    const broker = await startBroker({ db, sweep: true, env: { DATABASE_URL: runtime.url, TOLLGATE_MIGRATE: 'off' } });
    brokers.push(broker);
    await putBoundary(broker, 'crm-orders');
    const bot = await registerBot(broker);
    const taskId = await bot.openTask();
    const credential = await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:read' });
    expect(credential.status).toBe(201);
    const refused = await bot.credential(taskId, { boundary: 'crm-orders', action: 'orders:delete' });
    expect(refused.status).toBe(403);
    // The audit chain links the events the runtime user wrote (an UPDATE its triggers allow once).
    await expect
      .poll(
        async () =>
          (
            await broker.app.broker.db.query<{ n: number }>(
              'SELECT count(*)::int AS n FROM audit_events a WHERE NOT EXISTS (SELECT 1 FROM audit_links l WHERE l.event_id = a.id)',
            )
          ).rows[0]!.n,
        { timeout: 10_000 },
      )
      .toBe(0);
  });

  it('refuses an unknown command with the usage', async () => {
    const error = await run(process.execPath, [MAIN, 'migrat'], { cwd: ROOT, env: { PATH: process.env.PATH } }).then(
      () => undefined,
      (e: { code: number; stderr: string }) => e,
    );
    expect(error?.code).toBe(2);
    expect(error?.stderr).toContain('usage: tollgate-broker [migrate | history prune --before YYYY-MM]');
  });
});
