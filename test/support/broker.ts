import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { createApp, type App } from '../../apps/broker/app.js';
import type { Clock } from '../../libs/clock/clock.js';
import type { KeyTimings } from '../../libs/keys/key-ring.js';
import type { OutboxTimings } from '../../libs/leases/outbox.js';
import { loadBrokerConfig } from '../../apps/broker/config.js';
import { freshDatabase, type TestDatabase } from './database.js';

export interface TestBroker {
  url: string;
  adminKey: string;
  /** The KEK this broker's signing keys are sealed under (base64). */
  kek: string;
  db: TestDatabase;
  app: App;
  /** Stops this broker (the database stays, so a new broker can start on it). */
  stop(): Promise<void>;
  /** Starts another broker process-equivalent on the same database and data folder. */
  restart(env?: Record<string, string>): Promise<TestBroker>;
  /** Stops the broker and drops its database. */
  close(): Promise<void>;
}

export interface StartOptions {
  db?: TestDatabase;
  env?: Record<string, string>;
  clock?: Clock;
  sweep?: boolean;
  kind?: 'postgres' | 'pglite';
  /** Shorter signing-key thresholds, for tests that watch a retired key leave the JWKS. */
  keyTimings?: Partial<KeyTimings>;
  /** Shorter outbox retries, for tests that watch a source revocation fail and be retried. */
  outboxTimings?: Partial<OutboxTimings>;
}

/** Starts the real Nest app on a real database, listening on a loopback port. */
export async function startBroker(options: StartOptions = {}): Promise<TestBroker> {
  const db = options.db ?? (await freshDatabase(options.kind));
  const adminKey = options.env?.TOLLGATE_ADMIN_KEY ?? `test-admin-${randomBytes(24).toString('hex')}`;
  const kek = options.env?.TOLLGATE_KEK ?? kekFor(db);
  const env: Record<string, string> = {
    TOLLGATE_DATA_DIR: db.dataDir,
    TOLLGATE_ADMIN_KEY: adminKey,
    TOLLGATE_KEK: kek,
    TOLLGATE_LOG_LEVEL: 'error',
    ...(db.databaseUrl ? { DATABASE_URL: db.databaseUrl } : {}),
    ...options.env,
  };
  // The issuer must be known before the port is: reserve one first.
  const port = await freePort();
  env.PORT = String(port);
  const config = loadBrokerConfig(env);
  const app = await createApp(config, {
    clock: options.clock,
    sweep: options.sweep ?? false,
    keyTimings: options.keyTimings,
    outboxTimings: options.outboxTimings,
  });
  await app.app.listen({ port, host: '127.0.0.1' });
  const url = `http://127.0.0.1:${port}`;
  const broker: TestBroker = {
    url,
    adminKey,
    kek,
    db,
    app,
    stop: () => app.close(),
    restart: async (extra = {}) =>
      startBroker({ ...options, db, env: { ...options.env, TOLLGATE_ADMIN_KEY: adminKey, TOLLGATE_KEK: kek, ...extra } }),
    close: async () => {
      await app.close().catch(() => {});
      await db.drop();
    },
  };
  return broker;
}

const keks = new Map<string, string>();
function kekFor(db: TestDatabase): string {
  let kek = keks.get(db.name);
  if (!kek) {
    kek = randomBytes(32).toString('base64');
    keks.set(db.name, kek);
  }
  return kek;
}

export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}
