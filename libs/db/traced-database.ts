import { inSpan, type SpanAttributes } from '../tracing/index.js';
import type { Database, QueryRows, Sql } from './database.js';

/**
 * A Database whose statements and transactions leave spans (traces on only: the composition root
 * wraps the database only then). A span names a statement by its prepared-statement name or its
 * first keyword: never the SQL text past it, never a parameter (they hold token hashes, params,
 * intents). Only inside a traced request: background work's statements leave no spans.
 */
export class TracedDatabase implements Database {
  readonly kind: Database['kind'];

  constructor(private readonly db: Database) {
    this.kind = db.kind;
  }

  query<T = Record<string, unknown>>(text: string, params?: readonly unknown[], name?: string): Promise<QueryRows<T>> {
    return tracedQuery(this.db, text, params, name);
  }

  transaction<T>(work: (tx: Sql) => Promise<T>): Promise<T> {
    return inSpan(
      'transaction',
      { ...DB, 'db.operation.name': 'transaction' },
      () => this.db.transaction((tx) => work({ query: (text, params, name) => tracedQuery(tx, text, params, name) })),
      CHILD_ONLY,
    );
  }

  ping(): Promise<void> {
    return this.db.ping();
  }

  listen(channel: string, onNotify: () => void): Promise<() => Promise<void>> {
    return this.db.listen(channel, onNotify);
  }

  close(): Promise<void> {
    return this.db.close();
  }
}

const CHILD_ONLY = { childOnly: true };
const DB: SpanAttributes = { 'db.system': 'postgresql', 'db.system.name': 'postgresql' };

function tracedQuery<T>(sql: Sql, text: string, params: readonly unknown[] | undefined, name: string | undefined): Promise<QueryRows<T>> {
  const operation = /^\s*([A-Za-z]+)/.exec(text)?.[1]?.toUpperCase() ?? 'QUERY';
  const attributes: SpanAttributes = { ...DB, 'db.operation.name': operation };
  if (name !== undefined) attributes['db.query.summary'] = name;
  return inSpan(name ?? operation, attributes, () => sql.query<T>(text, params, name), CHILD_ONLY);
}
