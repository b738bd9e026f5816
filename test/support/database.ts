import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

/** Where the PostgreSQL server for tests lives; override with TEST_DATABASE_URL. */
export const SERVER = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export interface TestDatabase {
  kind: 'postgres' | 'pglite';
  /** Set on PostgreSQL: a database made for this test file alone. */
  databaseUrl: string | undefined;
  /** Set on PGlite: a fresh data folder. */
  dataDir: string;
  name: string;
  drop(): Promise<void>;
}

let reachable: Promise<boolean> | undefined;

/** True when a PostgreSQL server answers. With CI=true one must: CI never silently falls back. */
export function postgresReachable(): Promise<boolean> {
  reachable ??= (async () => {
    const client = new pg.Client({ connectionString: SERVER, connectionTimeoutMillis: 2000 });
    try {
      await client.connect();
      await client.query('SELECT 1');
      return true;
    } catch (error) {
      if (process.env.CI === 'true')
        throw new Error(`CI=true but PostgreSQL at ${SERVER} is not reachable: ${String(error)}`, { cause: error });
      return false;
    } finally {
      await client.end().catch(() => {});
    }
  })();
  return reachable;
}

/**
 * A fresh database for one test file: a new PostgreSQL database when a server answers (unless
 * `kind` asks for PGlite), else a new PGlite data folder.
 */
export async function freshDatabase(kind?: 'postgres' | 'pglite'): Promise<TestDatabase> {
  const dataDir = mkdtempSync(join(tmpdir(), 'tollgate-test-'));
  const usePostgres =
    kind === 'postgres' || (kind === undefined && process.env.TOLLGATE_TEST_DB !== 'pglite' && (await postgresReachable()));
  if (!usePostgres) {
    return {
      kind: 'pglite',
      databaseUrl: undefined,
      dataDir,
      name: dataDir,
      drop: async () => rmSync(dataDir, { recursive: true, force: true }),
    };
  }
  const name = `tollgate_test_${randomBytes(6).toString('hex')}`;
  await admin((client) => client.query(`CREATE DATABASE ${name}`));
  const url = new URL(SERVER);
  url.pathname = `/${name}`;
  return {
    kind: 'postgres',
    databaseUrl: url.toString(),
    dataDir,
    name,
    drop: async () => {
      rmSync(dataDir, { recursive: true, force: true });
      await admin((client) => client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    },
  };
}

/** Runs statements against the server's maintenance database (create, drop, lock out). */
export async function admin<T>(work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: SERVER });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** A direct connection to a test database, for asserting on rows and tampering as an attacker would. */
export async function connect(databaseUrl: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  return client;
}

/**
 * A login role with data rights only (no DDL), as a deployment's runtime user gets after the
 * migrate step; granted on the tables that exist now, so call it after migrating.
 */
export async function runtimeRole(database: TestDatabase): Promise<{ url: string; drop(): Promise<void> }> {
  const role = `tollgate_rt_${randomBytes(4).toString('hex')}`;
  const password = randomBytes(12).toString('hex');
  await admin((client) => client.query(`CREATE ROLE ${role} LOGIN PASSWORD '${password}'`));
  const owner = await connect(database.databaseUrl!);
  try {
    await owner.query(`GRANT CONNECT ON DATABASE ${database.name} TO ${role}`);
    await owner.query(`GRANT USAGE ON SCHEMA public TO ${role}`);
    await owner.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO ${role}`);
    await owner.query(`GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO ${role}`);
  } finally {
    await owner.end();
  }
  const url = new URL(database.databaseUrl!);
  url.username = role;
  url.password = password;
  return {
    url: url.toString(),
    // The database must be dropped first: a role that still owns grants cannot be dropped.
    drop: () => admin((client) => client.query(`DROP ROLE IF EXISTS ${role}`)).then(() => undefined),
  };
}
