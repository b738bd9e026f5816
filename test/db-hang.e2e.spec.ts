import { createServer, connect as connectTcp, type Server, type Socket } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresDatabase } from '../libs/db/postgres-database.js';
import { TemporarilyUnavailable } from '../libs/errors/index.js';
import { freshDatabase, postgresReachable, type TestDatabase } from './support/database.js';

/**
 * A connection whose packets are dropped (a network partition, a node gone without a RST) never
 * answers, and PostgreSQL's statement_timeout never hears of it. The broker must give up on its
 * own: the request fails closed with a 503, and the hung connection is destroyed, not pooled again,
 * so the next request after the network heals gets a working one. Here a TCP proxy in front of
 * PostgreSQL stops forwarding without closing anything.
 */
class Blackhole {
  forwarding = true;
  private readonly sockets = new Set<Socket>();
  private readonly server: Server = createServer((client) => {
    const upstream = connectTcp(this.target.port, this.target.host);
    for (const socket of [client, upstream]) {
      this.sockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => this.sockets.delete(socket));
    }
    client.on('data', (chunk) => this.forwarding && upstream.write(chunk));
    upstream.on('data', (chunk) => this.forwarding && client.write(chunk));
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });

  constructor(private readonly target: { host: string; port: number }) {}

  async listen(): Promise<number> {
    await new Promise<void>((done) => this.server.listen(0, '127.0.0.1', done));
    return (this.server.address() as { port: number }).port;
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise((done) => this.server.close(done));
  }
}

const QUERY_TIMEOUT_MS = 400;
let reachable = false;
let database: TestDatabase;
let proxy: Blackhole;
let pool: pg.Pool;
let db: PostgresDatabase;

beforeAll(async () => {
  reachable = await postgresReachable();
  if (!reachable) return;
  database = await freshDatabase('postgres');
  const url = new URL(database.databaseUrl!);
  proxy = new Blackhole({ host: url.hostname, port: Number(url.port || 5432) });
  url.host = `127.0.0.1:${await proxy.listen()}`;
  pool = new pg.Pool({ connectionString: url.toString(), max: 2, connectionTimeoutMillis: 2_000 });
  pool.on('error', () => {});
  db = new PostgresDatabase(pool, () => pool.end(), QUERY_TIMEOUT_MS);
});

afterAll(async () => {
  if (!reachable) return;
  await db.close().catch(() => {});
  await proxy.stop();
  await database.drop();
});

describe('a database connection that hangs', () => {
  it('fails a query and a transaction closed within the query timeout, then recovers with a fresh connection', async (context) => {
    if (!reachable) return context.skip();
    // Warm the pool: the connections exist before the network goes quiet.
    await Promise.all([db.query('SELECT 1'), db.query('SELECT 1')]);
    proxy.forwarding = false;

    const started = Date.now();
    const query = db.query('SELECT 1').then(
      () => 'answered',
      (error: unknown) => error,
    );
    const transaction = db
      .transaction(async (tx) => {
        await tx.query('SELECT 1');
        return 'committed';
      })
      .then(
        (value) => value,
        (error: unknown) => error,
      );
    const [queryOutcome, transactionOutcome] = await Promise.all([query, transaction]);
    const elapsed = Date.now() - started;

    expect(queryOutcome).toBeInstanceOf(TemporarilyUnavailable);
    expect(transactionOutcome).toBeInstanceOf(TemporarilyUnavailable);
    // The timeout, not a ROLLBACK waiting on the same dead connection after it.
    expect(elapsed).toBeGreaterThanOrEqual(QUERY_TIMEOUT_MS - 50);
    expect(elapsed).toBeLessThan(QUERY_TIMEOUT_MS * 3);

    // The hung connections were destroyed, not returned to the pool: once the network heals, the
    // next statements get fresh connections and answer.
    proxy.forwarding = true;
    await expect(db.query<{ one: number }>('SELECT 1 AS one')).resolves.toMatchObject({ rows: [{ one: 1 }] });
    await expect(db.transaction((tx) => tx.query('SELECT 2 AS two'))).resolves.toMatchObject({ rows: [{ two: 2 }] });
  });
});
