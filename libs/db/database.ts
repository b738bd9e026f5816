import { TemporarilyUnavailable } from '../errors/index.js';

/**
 * The storage port every domain's persistence code talks to: parameterised SQL and transactions.
 * Two adapters share it: PostgreSQL through TypeORM + pg, and the embedded PGlite default.
 */
export interface Sql {
  /**
   * `name` makes it a prepared statement, planned once per connection: worth it for the hot path's
   * larger statements, whose planning costs more than their execution.
   */
  query<T = Record<string, unknown>>(text: string, params?: readonly unknown[], name?: string): Promise<QueryRows<T>>;
}

export interface QueryRows<T> {
  rows: T[];
  /** Rows changed by INSERT/UPDATE/DELETE (or returned by SELECT). */
  count: number;
}

export interface Database extends Sql {
  readonly kind: 'postgres' | 'pglite';
  /** Runs `work` in one transaction; commits when it resolves, rolls back when it throws. */
  transaction<T>(work: (tx: Sql) => Promise<T>): Promise<T>;
  ping(): Promise<void>;
  /**
   * Calls `onNotify` on each notification on `channel` (LISTEN), and once more whenever listening
   * resumes after a lost connection (notifications sent meanwhile are gone). A wake-up, never a
   * source of truth: callers read what happened from the tables. Resolves once listening started;
   * the function it gives stops listening.
   */
  listen(channel: string, onNotify: () => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EHOSTUNREACH',
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
  '53300', // too_many_connections
  '3D000', // database does not exist (dropped under us)
  // read_only_sql_transaction: the connection reached a server that cannot write: a standby, an old
  // primary demoted, or a new one a moment before its promotion ends (Patroni reports a node as
  // primary just before promoting it, and a load balancer routes by that report). Not a wrong
  // statement: the primary is away for this connection, so 503 and a fresh connection next time.
  '25006',
]);

/**
 * True when an error means "the database did not answer" rather than "the statement was wrong".
 * Those become 503 temporarily_unavailable: fail closed, and never echo driver text to a client.
 */
export function isUnavailable(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e !== undefined && e !== null && depth < 4; depth++) {
    if (typeof e !== 'object') return false;
    const { code, message } = e as { code?: unknown; message?: unknown };
    if (typeof code === 'string' && (CONNECTION_CODES.has(code) || code.startsWith('08'))) return true;
    if (
      typeof message === 'string' &&
      /Connection terminated|connection timeout|Query read timeout|timeout exceeded when trying to connect|Client has encountered a connection error|not queryable/i.test(
        message,
      )
    ) {
      return true;
    }
    e = (e as { driverError?: unknown; cause?: unknown }).driverError ?? (e as { cause?: unknown }).cause;
  }
  return false;
}

export function unavailable(error: unknown): never {
  if (isUnavailable(error)) {
    throw new TemporarilyUnavailable('the database is not available; try again shortly');
  }
  throw error;
}

/**
 * Runs a change and then tells `changed`, whether the change committed or failed: a replica's caches
 * drop what may have changed either way (a failed commit may still have committed).
 */
export async function thenForget<T>(change: () => Promise<T>, changed: () => void): Promise<T> {
  try {
    return await change();
  } finally {
    changed();
  }
}
