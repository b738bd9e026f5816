import type pg from 'pg';
import { TemporarilyUnavailable } from '../errors/errors.js';
import { isUnavailable, unavailable, type Database, type QueryRows, type Sql } from './database.js';

/**
 * PostgreSQL through the pg pool directly: the hot path's few statements go out as named prepared
 * statements with no ORM layer in between (TypeORM runs the migrations and owns the pool's setup).
 */
export class PostgresDatabase implements Database {
  readonly kind = 'postgres';

  constructor(
    private readonly pool: pg.Pool,
    private readonly closePool: () => Promise<void>,
  ) {}

  async query<T>(text: string, params: readonly unknown[] = [], name?: string): Promise<QueryRows<T>> {
    const client = await this.connect();
    let broken: Error | undefined;
    try {
      const result = await client.query({ text, values: [...params], ...(name ? { name } : {}) });
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
      await client.query('BEGIN');
      const tx: Sql = {
        query: async <R>(text: string, params: readonly unknown[] = [], name?: string) => {
          const result = await client.query({ text, values: [...params], ...(name ? { name } : {}) });
          return { rows: result.rows as R[], count: result.rowCount ?? result.rows.length };
        },
      };
      const result = await work(tx);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch((rollbackError: unknown) => {
        // A connection that cannot roll back is not fit to go back into the pool.
        broken = rollbackError instanceof Error ? rollbackError : new Error(String(rollbackError));
      });
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

  async ping(): Promise<void> {
    await this.query('SELECT 1');
  }

  close(): Promise<void> {
    return this.closePool();
  }
}
