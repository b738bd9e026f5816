import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DataSource, type QueryRunner } from 'typeorm';
import { PGliteDriver } from 'typeorm-pglite';
import { migrations } from '../../migrations/index.js';
import { ConfigurationError, TemporarilyUnavailable } from '../errors/errors.js';
import type pg from 'pg';
import { unavailable, type Database, type QueryRows, type Sql } from './database.js';
import { PostgresDatabase } from './postgres-database.js';

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
}

/** An arbitrary constant: the advisory lock replicas hold while migrating and bootstrapping. */
const STARTUP_LOCK = 0x70_11_6a_7e;

/**
 * Opens the database, runs the migrations under an advisory lock (replicas starting together wait
 * for each other instead of racing), then runs `bootstrap` under the same lock.
 */
export async function openDatabase(
  options: DatabaseOptions,
  bootstrap: (db: Database) => Promise<void> = async () => {},
): Promise<Database> {
  const dataSource = options.databaseUrl ? postgresDataSource(options) : pgliteDataSource(options.dataDir);
  try {
    await dataSource.initialize();
  } catch (error) {
    if (!options.databaseUrl) embeddedOpen = undefined;
    throw error;
  }
  const db: Database = options.databaseUrl
    ? new PostgresDatabase((dataSource.driver as unknown as { master: pg.Pool }).master, async () => {
        if (dataSource.isInitialized) await dataSource.destroy();
      })
    : new TypeOrmDatabase(dataSource, () => {
        embeddedOpen = undefined;
      });
  try {
    const lock = dataSource.createQueryRunner();
    await lock.connect();
    await lock.query('SELECT pg_advisory_lock($1)', [STARTUP_LOCK]);
    try {
      if (options.migrate === false) await refuseUnmigrated(dataSource);
      else await dataSource.runMigrations({ transaction: 'each' });
      await bootstrap(db);
    } finally {
      await lock.query('SELECT pg_advisory_unlock($1)', [STARTUP_LOCK]);
      await lock.release();
    }
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
  // Two connections: the lock holds one while the migrations run on the other.
  const dataSource = options.databaseUrl ? postgresDataSource({ ...options, poolSize: 2 }) : pgliteDataSource(options.dataDir);
  try {
    await dataSource.initialize();
    const lock = dataSource.createQueryRunner();
    await lock.connect();
    await lock.query('SELECT pg_advisory_lock($1)', [STARTUP_LOCK]);
    try {
      return (await dataSource.runMigrations({ transaction: 'each' })).map((migration) => migration.name);
    } finally {
      await lock.query('SELECT pg_advisory_unlock($1)', [STARTUP_LOCK]).catch(() => {});
      await lock.release();
    }
  } finally {
    if (dataSource.isInitialized) await dataSource.destroy();
    if (!options.databaseUrl) embeddedOpen = undefined;
  }
}

async function refuseUnmigrated(dataSource: DataSource): Promise<void> {
  // Two statements: a query naming a table that does not exist fails at parse, whatever its CASE.
  const [{ present }]: Array<{ present: boolean }> = await dataSource.query(`SELECT to_regclass('tollgate_migrations') IS NOT NULL AS present`);
  const rows: Array<{ name: string }> = present ? await dataSource.query('SELECT name FROM tollgate_migrations') : [];
  const applied = new Set(rows.map((row) => row.name));
  const pending = dataSource.migrations.map((migration) => migration.name ?? migration.constructor.name).filter((name) => !applied.has(name));
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
      // Two cores: more connections than this only queue inside PostgreSQL.
      max: options.poolSize ?? 10,
      // A dead database must turn into a quick 503, not a request that hangs.
      connectionTimeoutMillis: 2_000,
      statement_timeout: 10_000,
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

  constructor(
    private readonly dataSource: DataSource,
    private readonly onClose: () => void,
  ) {}

  query<T>(text: string, params: readonly unknown[] = []): Promise<QueryRows<T>> {
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
        const tx: Sql = { query: <R>(text: string, params: readonly unknown[] = []) => run<R>(runner, text, params) };
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

  async close(): Promise<void> {
    if (this.dataSource.isInitialized) await this.dataSource.destroy();
    this.onClose();
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
