import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe } from 'vitest';
import type { Database, Sql } from '../../libs/db/database.js';
import { openDatabase } from '../../libs/db/typeorm-database.js';
import { freshDatabase, SERVER, type TestDatabase } from './database.js';

export type Backend = 'postgres' | 'pglite';

/** Both backends the broker ships with, in the order their describes run. */
export const BACKENDS: readonly Backend[] = ['postgres', 'pglite'];

let postgresAnswers: boolean | undefined;

/**
 * Whether this run covers `kind`. PGlite always. PostgreSQL always under CI=true, so a server that
 * is not there fails the run instead of skipping; elsewhere (a fresh machine, where `npm test` must
 * pass on PGlite alone, or TOLLGATE_TEST_DB=pglite) only when a server answers. Known while the
 * file's tests are collected (describe callbacks are synchronous), hence a probe in a child process.
 */
export function backendCovered(kind: Backend): boolean {
  if (kind === 'pglite' || process.env.CI === 'true') return true;
  if (process.env.TOLLGATE_TEST_DB === 'pglite') return false;
  postgresAnswers ??=
    spawnSync(
      process.execPath,
      [
        '-e',
        `const c = new (require('pg').Client)({ connectionString: process.argv[1], connectionTimeoutMillis: 2000 });
         c.connect().then(() => c.query('SELECT 1')).then(() => process.exit(0), () => process.exit(1));`,
        SERVER,
      ],
      { timeout: 10_000, stdio: 'ignore' },
    ).status === 0;
  return postgresAnswers;
}

export interface BackendContext {
  /** The migrated database of this describe; valid inside its tests and hooks. */
  db: () => Database;
  /** Which backend this copy of the body runs on. */
  kind: Backend;
  /** The test database underneath (its URL on PostgreSQL, its data folder on PGlite). */
  test: () => TestDatabase;
}

/**
 * The store contract tier: runs `body` once on PostgreSQL and once on PGlite in the same run, each
 * copy inside its own describe with a fresh database migrated by the broker's own opening code
 * (openDatabase: the same migrations, the same adapters, no mock). Under CI=true a missing
 * PostgreSQL fails the postgres copy rather than skipping it, so a contract can never pass there on
 * one backend only; outside CI the copy is skipped when no server answers (see backendCovered).
 *
 * The copies run one after the other: typeorm-pglite holds one embedded database per process, and
 * each describe closes its own before the next one opens.
 */
export function describeOnBothBackends(title: string, body: (ctx: BackendContext) => void): void {
  for (const kind of BACKENDS) {
    describe.skipIf(!backendCovered(kind))(`${title} [${kind}]`, () => {
      let test: TestDatabase | undefined;
      let db: Database | undefined;
      beforeAll(async () => {
        test = await freshDatabase(kind);
        db = await openDatabase({ databaseUrl: test.databaseUrl, dataDir: test.dataDir, poolSize: 4 });
      });
      afterAll(async () => {
        await db?.close();
        await test?.drop();
      });
      body({
        kind,
        db: () => {
          if (!db) throw new Error(`the ${kind} database is not open: use ctx.db() inside a test or hook`);
          return db;
        },
        test: () => {
          if (!test) throw new Error(`the ${kind} database is not made yet: use ctx.test() inside a test or hook`);
          return test;
        },
      });
    });
  }
}

/** The database, with every statement sent named in `sent` (by its prepared name, else its start). */
export function counted(db: Database): { sql: Sql; sent: string[] } {
  const sent: string[] = [];
  return {
    sent,
    sql: {
      query: (text, params, name) => {
        sent.push(name ?? text.slice(0, 40));
        return db.query(text, params, name);
      },
    },
  };
}
