import { afterAll, beforeAll, describe } from 'vitest';
import type { Database } from '../../libs/db/database.js';
import { openDatabase } from '../../libs/db/typeorm-database.js';
import { freshDatabase, type TestDatabase } from './database.js';

export type Backend = 'postgres' | 'pglite';

/** Both backends the broker ships with, in the order their describes run. */
export const BACKENDS: readonly Backend[] = ['postgres', 'pglite'];

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
 * (openDatabase: the same migrations, the same adapters, no mock). A missing PostgreSQL fails the
 * postgres copy (freshDatabase('postgres') cannot create its database) rather than skipping it, so
 * a contract can never silently pass on one backend only.
 *
 * The copies run one after the other: typeorm-pglite holds one embedded database per process, and
 * each describe closes its own before the next one opens.
 */
export function describeOnBothBackends(title: string, body: (ctx: BackendContext) => void): void {
  for (const kind of BACKENDS) {
    describe(`${title} [${kind}]`, () => {
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
