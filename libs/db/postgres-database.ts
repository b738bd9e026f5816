import pg from 'pg';
import { TemporarilyUnavailable } from '../errors/index.js';
import { isUnavailable, unavailable, type Database, type QueryRows, type Sql } from './database.js';

/**
 * Listens for 'error' on a pg client for as long as it lives. pg emits it when the backend dies
 * (57P01 on a failover or pg_terminate_backend, "Connection terminated unexpectedly" when the socket
 * drops). The pool listens only while a client is idle: one checked out (inside a transaction, the
 * startup lock's, TypeORM's own) had no listener, and Node ends the process on an 'error' event
 * nobody hears. Heard, the error still fails the statement in flight and every later one on that
 * client (not queryable): the caller answers 503 and releases the client with the error, so the
 * pool drops it and the next request gets a fresh connection.
 */
export function watchConnection(client: pg.Client, onLost: (error: Error) => void = () => {}): void {
  client.on('error', onLost);
}

/** The client class the pool builds (TypeORM passes `extra.Client` on): watched from its first moment. */
export class WatchedClient extends pg.Client {
  constructor(config?: string | pg.ClientConfig) {
    super(config);
    watchConnection(this);
  }
}

/** What PostgreSQL allows one statement of the broker's (the hot path's take milliseconds). */
export const STATEMENT_TIMEOUT_MS = 10_000;

/**
 * How long the broker waits for an answer on a connection. One whose packets are dropped (a network
 * partition, a node gone without a RST) never answers, and PostgreSQL's statement_timeout never
 * hears of it: the client gives up a little after the server would have, the request fails closed
 * with a 503, and the connection is destroyed rather than pooled again. (Not set on the pool: the
 * migrations, on TypeORM's connections, may run longer.)
 */
export const QUERY_TIMEOUT_MS = STATEMENT_TIMEOUT_MS + 2_000;

/**
 * PostgreSQL through the pg pool directly: the hot path's few statements go out as named prepared
 * statements with no ORM layer in between (TypeORM runs the migrations and owns the pool's setup).
 */
export class PostgresDatabase implements Database {
  readonly kind = 'postgres';
  private readonly listeners = new Set<Listener>();

  constructor(
    private readonly pool: pg.Pool,
    private readonly closePool: () => Promise<void>,
    private readonly queryTimeoutMs: number = QUERY_TIMEOUT_MS,
  ) {}

  /** pg reads a per-query `query_timeout` (client.js), which its types do not declare. */
  private timed<V extends unknown[]>(config: pg.QueryConfig<V>): pg.QueryConfig<V> {
    return Object.assign(config, { query_timeout: this.queryTimeoutMs });
  }

  async query<T>(text: string, params: readonly unknown[] = [], name?: string): Promise<QueryRows<T>> {
    const client = await this.connect();
    let broken: Error | undefined;
    try {
      const result = await client.query(this.timed({ text, values: [...params], ...(name ? { name } : {}) }));
      return { rows: result.rows as T[], count: result.rowCount ?? result.rows.length };
    } catch (error) {
      if (error instanceof Error && isUnavailable(error)) broken = error;
      return unavailable(error);
    } finally {
      client.release(broken);
    }
  }

  async transaction<T>(work: (tx: Sql) => Promise<T>): Promise<T> {
    const client = await this.connect();
    let broken: Error | undefined;
    try {
      await client.query(this.timed({ text: 'BEGIN' }));
      const tx: Sql = {
        query: async <R>(text: string, params: readonly unknown[] = [], name?: string) => {
          const result = await client.query(this.timed({ text, values: [...params], ...(name ? { name } : {}) }));
          return { rows: result.rows as R[], count: result.rowCount ?? result.rows.length };
        },
      };
      const result = await work(tx);
      await client.query(this.timed({ text: 'COMMIT' }));
      return result;
    } catch (error) {
      if (error instanceof Error && isUnavailable(error)) {
        // The connection is lost, hangs, or cannot write (a standby's): it is dropped rather than
        // pooled, and a ROLLBACK on a hung one would wait too. Destroying it ends the transaction on
        // the server all the same.
        broken = error;
      } else {
        await client.query('ROLLBACK').catch((rollbackError: unknown) => {
          // A connection that cannot roll back is not fit to go back into the pool.
          broken = rollbackError instanceof Error ? rollbackError : new Error(String(rollbackError));
        });
      }
      return unavailable(error);
    } finally {
      client.release(broken);
    }
  }

  /** Any failure to get a connection means the database is not there for us: a 503, not a 500. */
  private async connect(): Promise<pg.PoolClient> {
    try {
      return await this.pool.connect();
    } catch {
      throw new TemporarilyUnavailable('the database is not available; try again shortly');
    }
  }

  /**
   * Ready means able to write: a connection that reached a standby (a failover under way, a load
   * balancer pointing at the wrong node) or a read-only database answers SELECT 1 but cannot issue
   * a lease. It is dropped, so the next one may reach the primary.
   */
  async ping(): Promise<void> {
    const client = await this.connect();
    let broken: Error | undefined;
    try {
      const { rows } = await client.query<{ read_only: string }>(`SELECT current_setting('transaction_read_only') AS read_only`);
      if (rows[0]?.read_only === 'on') {
        broken = new Error('read-only connection');
        throw new TemporarilyUnavailable('the database does not accept writes; try again shortly');
      }
    } catch (error) {
      if (error instanceof TemporarilyUnavailable) throw error;
      if (error instanceof Error && isUnavailable(error)) broken = error;
      return unavailable(error);
    } finally {
      client.release(broken);
    }
  }

  /**
   * LISTEN on a connection of its own, outside the pool (a pooled connection goes back to other
   * work, and its LISTEN with it). When that connection dies (a failover, a restart) it is opened
   * again after a pause, and `onNotify` is called once listening resumes: what was written while
   * nobody listened is read then. Until the first connection succeeds this rejects, like a query.
   */
  async listen(channel: string, onNotify: () => void): Promise<() => Promise<void>> {
    const listener = new Listener(this.pool.options, channel, onNotify);
    await listener.start();
    this.listeners.add(listener);
    return async () => {
      this.listeners.delete(listener);
      await listener.stop();
    };
  }

  async close(): Promise<void> {
    await Promise.all([...this.listeners].map((listener) => listener.stop()));
    this.listeners.clear();
    return this.closePool();
  }
}

/** How long a lost LISTEN connection waits before it is opened again. */
const RELISTEN_DELAY_MS = 1_000;

/** One LISTEN connection and its reopening; see PostgresDatabase.listen. */
class Listener {
  private client: pg.Client | undefined;
  private stopped = false;
  private retry: NodeJS.Timeout | undefined;

  constructor(
    private readonly config: pg.ClientConfig,
    private readonly channel: string,
    private readonly onNotify: () => void,
  ) {}

  async start(): Promise<void> {
    const client = new pg.Client({ ...this.config, application_name: 'tollgate-listen' });
    watchConnection(client, () => this.lost(client));
    client.on('end', () => this.lost(client));
    client.on('notification', (message) => {
      if (message.channel === this.channel) this.onNotify();
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${pg.escapeIdentifier(this.channel)}`);
    } catch (error) {
      await client.end().catch(() => {});
      return unavailable(error);
    }
    if (this.stopped) {
      await client.end().catch(() => {});
      return;
    }
    this.client = client;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retry);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => {});
  }

  private lost(client: pg.Client): void {
    if (this.client !== client || this.stopped) return;
    this.client = undefined;
    client.end().catch(() => {});
    this.reopen();
  }

  private reopen(): void {
    this.retry = setTimeout(() => {
      this.start().then(
        () => {
          if (!this.stopped) this.onNotify();
        },
        () => this.reopen(),
      );
    }, RELISTEN_DELAY_MS);
    this.retry.unref();
  }
}
