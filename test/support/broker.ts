import { randomBytes } from 'node:crypto';
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
  /** The event feed's poll period (default the broker's own). */
  eventPollMs?: number;
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
  // The issuer must be known before the port is: reserve one first. Between the reservation and
  // the listen another process may take it; then the app is built again on another port.
  let port = 0;
  let app: App | undefined;
  for (let attempt = 1; app === undefined; attempt++) {
    port = await freePort();
    env.PORT = String(port);
    const candidate = await createApp(loadBrokerConfig(env), {
      clock: options.clock,
      sweep: options.sweep ?? false,
      keyTimings: options.keyTimings,
      outboxTimings: options.outboxTimings,
      eventPollMs: options.eventPollMs,
    });
    try {
      await candidate.app.listen({ port, host: '127.0.0.1' });
      app = candidate;
    } catch (error) {
      await candidate.close().catch(() => {});
      if ((error as { code?: string }).code !== 'EADDRINUSE' || attempt >= 5) throw error;
    }
  }
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

/**
 * A loopback port that is free now, chosen below the kernel's ephemeral range (32768 and up on
 * Linux): a port the kernel hands out (listen on 0) is also what it hands the next outgoing
 * connection (to PostgreSQL, say) as its local port, which once took a broker's port before it
 * listened (EADDRINUSE). Callers that can, retry on EADDRINUSE as startBroker does.
 */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  for (let attempt = 0; ; attempt++) {
    const candidate = 20_000 + Math.floor(Math.random() * 12_000);
    const free = await new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(false));
      server.listen(candidate, '127.0.0.1', () => server.close(() => resolve(true)));
    });
    if (free) return candidate;
    if (attempt >= 50) throw new Error('no free loopback port found between 20000 and 32000');
  }
}
