import type { Sql } from './database.js';

/** What an admin write changes: writers of one id of one kind queue up, other ids and kinds do not. */
export type WriterKind = 'boundary' | 'policy' | 'workload' | 'issuer';

/**
 * Serialises writers of one id for the rest of the transaction `tx` (a transaction-scoped advisory
 * lock, released by commit or rollback). A row lock cannot do this for an id that has no row yet:
 * two PUTs of one new boundary both read "no version", both claim version 1, and one fails on the
 * primary key. Checks made before the write (the latest version, an issuer's other bindings) hold
 * for the writer that holds this lock. Take it first in the transaction, before any row lock, so
 * writers of one id never wait on each other holding something else.
 */
export async function lockWriter(tx: Sql, kind: WriterKind, id: string): Promise<void> {
  await tx.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`tollgate:${kind}:${id}`], 'tollgate_writer_lock');
}
