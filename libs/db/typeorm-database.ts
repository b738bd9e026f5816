import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DataSource, MigrationExecutor, type QueryRunner } from 'typeorm';
import { getPGliteInstance, PGliteDriver } from 'typeorm-pglite';
import { migrations } from '../../migrations/index.js';
import { ConfigurationError, TemporarilyUnavailable } from '../errors/index.js';
import type pg from 'pg';
import { isUnavailable, unavailable, type Database, type QueryRows, type Sql } from './database.js';
import { PgliteStatements, type PgliteSession } from './pglite-statements.js';
import { PostgresDatabase, STATEMENT_TIMEOUT_MS, WatchedClient } from './postgres-database.js';

export interface DatabaseOptions {
  databaseUrl: string | undefined;
  dataDir: string;
  /** Largest number of pooled PostgreSQL connections. */
  poolSize?: number;
  /**
   * false (TOLLGATE_MIGRATE=off): never run DDL; refuse to open a database that lacks a migration
   * of this version, so the runtime user needs no DDL rights (`migrate` runs them beforehand).
   */
  migrate?: boolean;
  /** How long a start waits for PostgreSQL to answer before it gives up (default 60 s). */
  startupWaitMs?: number;
  /** Told each time a start finds the database away and waits `delayMs` to try again. */
  onWait?: (delayMs: number) => void;
}

/** An arbitrary constant: the advisory lock replicas hold while migrating and bootstrapping. */
const STARTUP_LOCK = 0x70_11_6a_7e;
const STARTUP_WAIT_MS = 60_000;

/**
 * Opens the database, then runs the migrations and `bootstrap` under an advisory lock (replicas
 * starting together wait for each other instead of racing). A PostgreSQL that is not there yet
 * (still starting, failing over, its connection killed mid-start) is waited for with backoff, up to
 * `startupWaitMs`, instead of the process exiting: a supervisor restarting it would only do the same.
 */
export async function openDatabase(
  options: DatabaseOptions,
  bootstrap: (startup: Sql) => Promise<void> = async () => {},
): Promise<Database> {
  if (!options.databaseUrl) return open(options, bootstrap);
  const deadline = Date.now() + (options.startupWaitMs ?? STARTUP_WAIT_MS);
  for (let delayMs = 100; ; delayMs = Math.min(delayMs * 2, 2_000)) {
    try {
      return await open(options, bootstrap);
    } catch (error) {
      const away = error instanceof TemporarilyUnavailable || isUnavailable(error);
      if (!away || Date.now() + delayMs > deadline) throw error;
      options.onWait?.(delayMs);
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }
}

async function open(options: DatabaseOptions, bootstrap: (startup: Sql) => Promise<void>): Promise<Database> {
  const dataSource = options.databaseUrl ? postgresDataSource(options) : pgliteDataSource(options.dataDir);
  try {
    await dataSource.initialize();
  } catch (error) {
    if (!options.databaseUrl) embeddedOpen = undefined;
    await dataSource.destroy().catch(() => {});
    throw error;
  }
  const db: Database = options.databaseUrl
    ? new PostgresDatabase((dataSource.driver as unknown as { master: pg.Pool }).master, async () => {
        if (dataSource.isInitialized) await dataSource.destroy();
      })
    : new TypeOrmDatabase(dataSource, await getPGliteInstance(), () => {
        embeddedOpen = undefined;
      });
  try {
    await migrateAndBootstrap(dataSource, bootstrap, options.migrate !== false);
  } catch (error) {
    await db.close().catch(() => {});
    throw error;
  }
  return db;
}

/**
 * `tollgate-broker migrate` (npm run migrate): applies the pending migrations under the startup
 * lock and closes. Returns the names applied.
 */
export async function migrateDatabase(options: Pick<DatabaseOptions, 'databaseUrl' | 'dataDir'>): Promise<string[]> {
  const dataSource = options.databaseUrl ? postgresDataSource({ ...options, poolSize: 1 }) : pgliteDataSource(options.dataDir);
  try {
    await dataSource.initialize();
    return await migrateAndBootstrap(dataSource, async () => {}, true);
  } finally {
    if (dataSource.isInitialized) await dataSource.destroy();
    if (!options.databaseUrl) embeddedOpen = undefined;
  }
}

/**
 * The migrations and the bootstrap run on the lock's own connection, in one transaction under a
 * transaction-scoped lock: if that connection dies half-way, PostgreSQL rolls the work back and
 * frees the lock together, so no replica ever sees half a migration or takes the lock while
 * another one's statements still run on a different connection. Without `migrate`
 * (TOLLGATE_MIGRATE=off) no DDL runs, and a database lacking a migration of this version is refused.
 * Returns the names of the migrations applied.
 */
async function migrateAndBootstrap(
  dataSource: DataSource,
  bootstrap: (startup: Sql) => Promise<void>,
  migrate: boolean,
): Promise<string[]> {
  const lock = dataSource.createQueryRunner();
  try {
    await connect(lock);
    await lock.startTransaction();
    await run(lock, 'SELECT pg_advisory_xact_lock($1)', [STARTUP_LOCK]);
    let applied: string[] = [];
    if (migrate) {
      const migrations = new MigrationExecutor(dataSource, lock);
      migrations.transaction = 'none'; // already inside the lock's transaction
      // A migration rewriting a big table may take minutes: the broker's per-statement bound is not
      // meant for it (SET LOCAL: it ends with the transaction, before the connection is pooled).
      await run(lock, 'SET LOCAL statement_timeout = 0', []);
      applied = (await migrations.executePendingMigrations()).map((migration) => migration.name);
    } else {
      await refuseUnmigrated(dataSource, lock);
    }
    await bootstrap({ query: <R>(text: string, params: readonly unknown[] = []) => run<R>(lock, text, params) });
    await lock.commitTransaction();
    return applied;
  } catch (error) {
    if (lock.isTransactionActive) await lock.rollbackTransaction().catch(() => {});
    throw error;
  } finally {
    await lock.release().catch(() => {});
  }
}

async function refuseUnmigrated(dataSource: DataSource, lock: QueryRunner): Promise<void> {
  // Two statements: a query naming a table that does not exist fails at parse, whatever its CASE.
  const { rows: present } = await run<{ present: boolean }>(lock, `SELECT to_regclass('tollgate_migrations') IS NOT NULL AS present`, []);
  const { rows } = present[0]?.present ? await run<{ name: string }>(lock, 'SELECT name FROM tollgate_migrations', []) : { rows: [] };
  const applied = new Set(rows.map((row) => row.name));
  const pending = dataSource.migrations
    .map((migration) => migration.name ?? migration.constructor.name)
    .filter((name) => !applied.has(name));
  if (pending.length > 0) {
    throw new ConfigurationError([
      `TOLLGATE_MIGRATE: off, and the database lacks ${pending.length} migration(s) of this version (${pending[0]}${pending.length > 1 ? ', …' : ''}): run \`tollgate-broker migrate\` (npm run migrate) first`,
    ]);
  }
}

function postgresDataSource(options: DatabaseOptions): DataSource {
  return new DataSource({
    type: 'postgres',
    url: options.databaseUrl,
    migrations,
    migrationsTableName: 'tollgate_migrations',
    synchronize: false,
    logging: false,
    extra: {
      // Every connection, TypeORM's own included, hears its backend die (see watchConnection).
      Client: WatchedClient,
      // Two cores: more connections than this only queue inside PostgreSQL.
      max: options.poolSize ?? 10,
      // Pooled connections stay open while idle (pg closes them after 10 s by default). A
      // connection opened again under load costs a backend fork and a cold catalog cache: its first
      // statements plan against every history partition, 15–25 ms each, with requests queued
      // behind them: the worst rounds of issuance's p99 below saturation (docs/performance.md). A dead
      // server's connections are still dropped: by their error, keep-alive, or WatchedClient.
      idleTimeoutMillis: 0,
      // A dead database must turn into a quick 503, not a request that hangs.
      connectionTimeoutMillis: 2_000,
      statement_timeout: STATEMENT_TIMEOUT_MS,
      // Idle pooled connections to a peer that vanished are found by the kernel, not by a request.
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
      application_name: 'tollgate',
    },
  });
}

/**
 * typeorm-pglite keeps ONE PGlite instance per process: a second data source would silently share
 * the first one's database, whatever its data folder. So a process opens one embedded database at
 * a time, and says so plainly otherwise.
 */
let embeddedOpen: string | undefined;

function pgliteDataSource(dataDir: string): DataSource {
  const dir = resolve(dataDir, 'db');
  if (embeddedOpen !== undefined) {
    throw new Error(`the embedded database in ${embeddedOpen} is already open in this process; close it first`);
  }
  embeddedOpen = dir;
  mkdirSync(dir, { recursive: true });
  return new DataSource({
    type: 'postgres',
    // Without these two options TypeORM tries CREATE EXTENSION "uuid-ossp", which PGlite lacks.
    installExtensions: false,
    uuidExtension: 'pgcrypto',
    driver: new PGliteDriver({ dataDir: join(dir) }).driver,
    migrations,
    migrationsTableName: 'tollgate_migrations',
    synchronize: false,
    logging: false,
  });
}

/** The embedded PGlite database, through TypeORM's query runners. */
class TypeOrmDatabase implements Database {
  readonly kind = 'pglite';
  /**
   * PGlite is one database session: two transactions in flight would interleave on it (one's
   * ROLLBACK could undo the other's rows). So every statement and every transaction waits its turn.
   */
  private readonly turn = new Turnstile();
  /** The statements the code names (the hot path's), prepared once on the session. */
  private readonly statements: PgliteStatements;
  private closed = false;

  /** `pglite`: the instance this data source opened (typeorm-pglite's one per process). */
  constructor(
    private readonly dataSource: DataSource,
    pglite: PgliteSession,
    private readonly onClose: () => void,
  ) {
    this.statements = new PgliteStatements(pglite);
  }

  query<T>(text: string, params: readonly unknown[] = [], name?: string): Promise<QueryRows<T>> {
    if (name !== undefined) return this.serialised(() => this.named<T>(name, text, params));
    return this.serialised(async () => {
      const runner = this.dataSource.createQueryRunner();
      try {
        await connect(runner);
        return await run<T>(runner, text, params);
      } finally {
        await runner.release().catch(() => {});
      }
    });
  }

  transaction<T>(work: (tx: Sql) => Promise<T>): Promise<T> {
    return this.serialised(async () => {
      const runner = this.dataSource.createQueryRunner();
      try {
        await connect(runner);
        await runner.startTransaction();
        const tx: Sql = {
          query: <R>(text: string, params: readonly unknown[] = [], name?: string) =>
            name === undefined ? run<R>(runner, text, params) : this.named<R>(name, text, params),
        };
        try {
          const result = await work(tx);
          await runner.commitTransaction();
          return result;
        } catch (error) {
          if (runner.isTransactionActive) await runner.rollbackTransaction().catch(() => {});
          throw error;
        }
      } catch (error) {
        return unavailable(error);
      } finally {
        await runner.release().catch(() => {});
      }
    });
  }

  async ping(): Promise<void> {
    await this.query('SELECT 1');
  }

  /**
   * LISTEN on the one PGlite session, in its turn: between another caller's BEGIN and COMMIT it
   * would take effect only at that commit, and not at all on a rollback. PGlite delivers a
   * notification after the statement that received it; the session never drops, so no resume.
   */
  async listen(channel: string, onNotify: () => void): Promise<() => Promise<void>> {
    const pglite = await getPGliteInstance();
    const unlisten = await this.serialised(() => pglite.listen(channel, () => onNotify()));
    return () => this.serialised(() => unlisten());
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.dataSource.isInitialized) await this.dataSource.destroy();
    this.onClose();
  }

  /** A named statement, straight on the session (no query runner): see PgliteStatements. Called in turn. */
  private async named<T>(name: string, text: string, params: readonly unknown[]): Promise<QueryRows<T>> {
    // Closed, the instance is gone: as a query runner that cannot connect, a 503.
    if (this.closed) throw new TemporarilyUnavailable('the database is not available; try again shortly');
    try {
      return await this.statements.run<T>(name, text, params);
    } catch (error) {
      return unavailable(error);
    }
  }

  private serialised<T>(work: () => Promise<T>): Promise<T> {
    return this.turn.run(work);
  }
}

/** Any failure to get a connection means the database is not there for us: a 503, not a 500. */
async function connect(runner: QueryRunner): Promise<void> {
  try {
    await runner.connect();
  } catch {
    throw new TemporarilyUnavailable('the database is not available; try again shortly');
  }
}

async function run<T>(runner: QueryRunner, text: string, params: readonly unknown[]): Promise<QueryRows<T>> {
  try {
    const result = await runner.query(text, [...params], true);
    const rows = (result.records ?? []) as T[];
    return { rows, count: result.affected ?? rows.length };
  } catch (error) {
    return unavailable(error);
  }
}

/** A FIFO mutex: each piece of work starts after the previous one settles. */
class Turnstile {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(work: () => Promise<T>): Promise<T> {
    const result = this.tail.then(work, work);
    this.tail = result.catch(() => undefined);
    return result;
  }
}
