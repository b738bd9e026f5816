import type { Sql } from './database.js';

/** The tables kept in monthly partitions (migration 1764116910000-history-partitions; audit_links from 1764117090000). */
export type HistoryTable = 'decisions' | 'leases' | 'audit_events' | 'audit_links';

/** A month's partition of a history table: `<table>_yYYYYmMM`, ids of that UTC month. */
export interface MonthPartition {
  name: string;
  /** YYYY-MM */
  month: string;
}

/** How many months ahead of this one the maintenance duty keeps partitions ready. */
export const PARTITIONS_AHEAD = 2;

/** The table's month partitions, oldest first (its DEFAULT partition is not one). */
export async function monthPartitions(sql: Sql, table: HistoryTable): Promise<MonthPartition[]> {
  const { rows } = await sql.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
      WHERE i.inhparent = $1::regclass ORDER BY c.relname`,
    [table],
  );
  const pattern = new RegExp(`^${table}_y(\\d{4})m(\\d{2})$`);
  return rows.flatMap(({ name }) => {
    const match = pattern.exec(name);
    return match ? [{ name, month: `${match[1]}-${match[2]}` }] : [];
  });
}

/**
 * Makes this month's partitions and the next `ahead` months' (by the database clock) where they
 * are missing; returns how many it made. Idempotent and safe on every replica at once: the SQL
 * function checks first and makes them under an advisory lock.
 */
export async function ensureHistoryPartitions(sql: Sql, ahead: number = PARTITIONS_AHEAD): Promise<number> {
  const { rows } = await sql.query<{ made: number }>('SELECT tollgate_ensure_history_partitions($1) AS made', [ahead]);
  return rows[0]!.made;
}

/** The advisory lock of partition changes (the same number as in the migration's SQL function). */
export const HISTORY_PARTITION_LOCK = 0x70_11_a0_d2;

/** A PostgreSQL error's SQLSTATE, looked for through `cause` (the adapters wrap driver errors). */
export function sqlState(error: unknown): string | undefined {
  for (let e: unknown = error, depth = 0; typeof e === 'object' && e !== null && depth < 4; depth++) {
    const { code, cause } = e as { code?: unknown; cause?: unknown };
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return code;
    e = cause;
  }
  return undefined;
}
