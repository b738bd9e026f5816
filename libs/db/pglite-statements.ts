import { parse, protocol, type PGlite } from '@electric-sql/pglite';
import type { QueryRows } from './database.js';

/**
 * What this needs of the PGlite instance. Structural: typeorm-pglite hands over the instance of
 * PGlite's CommonJS build, whose class is not the ES module build's in the type system.
 */
export type PgliteSession = Pick<PGlite, 'runExclusive' | 'execProtocolStream' | 'parsers' | 'serializers'>;

interface Prepared {
  text: string;
  /** The parameters' type oids, as PostgreSQL inferred them when the statement was parsed. */
  paramTypes: number[];
}

/**
 * Named prepared statements on the embedded PGlite session, as pg keeps them on a PostgreSQL
 * connection. PGlite's own `query` sends every statement unnamed: Parse, Describe, Bind, Describe,
 * Execute and Sync, each its own trip into the WASM backend, so each call parses, analyses and
 * plans the text again. For the hot path's larger statements (the permit's one CTE statement) that
 * was most of their cost: about 4 ms of CPU per permit, 1.2 ms prepared (bench/embedded.mjs and
 * docs/performance.md). Here a statement is parsed once per session under its name, and each
 * call is one Bind, Describe, Execute, Sync message.
 *
 * The values are serialised and the rows parsed exactly as PGlite's `query` does (its serialisers
 * by the parameter types PostgreSQL inferred, its parsers by the result types), so a statement
 * answers the same named or not. The caller runs one statement at a time on the session (the
 * adapter's turnstile); PGlite's own query lock is taken too, as its `query` takes it.
 */
export class PgliteStatements {
  private readonly prepared = new Map<string, Prepared>();

  constructor(private readonly pglite: PgliteSession) {}

  async run<T>(name: string, text: string, params: readonly unknown[]): Promise<QueryRows<T>> {
    const statement = this.prepared.get(name) ?? (await this.prepare(name, text));
    // As pg refuses it on PostgreSQL: one name, one text, or the wrong statement would run.
    if (statement.text !== text) throw new Error(`prepared statement "${name}" was already prepared with a different text`);
    const values = params.map((value, i) => this.serialise(value, statement.paramTypes[i]));
    const message = concat([
      protocol.serialize.bind({ statement: name, values }),
      protocol.serialize.describe({ type: 'P' }),
      protocol.serialize.execute({}),
      protocol.serialize.sync(),
    ]);
    const messages = await this.pglite.runExclusive(() => this.pglite.execProtocolStream(message));
    const result = parse.parseResults(messages, this.pglite.parsers)[0]!;
    return { rows: result.rows as T[], count: result.rowCount ?? result.rows.length };
  }

  /**
   * Parses `text` under `name` and learns its parameter types. A statement PostgreSQL refuses
   * (a syntax error, an aborted transaction) throws and is not remembered: the next call tries again.
   */
  private async prepare(name: string, text: string): Promise<Prepared> {
    const message = concat([
      protocol.serialize.parse({ name, text }),
      protocol.serialize.describe({ type: 'S', name }),
      protocol.serialize.sync(),
    ]);
    const messages = await this.pglite.runExclusive(() => this.pglite.execProtocolStream(message));
    const statement = { text, paramTypes: parse.parseDescribeStatementResults(messages) };
    this.prepared.set(name, statement);
    return statement;
  }

  /** PGlite's `query` serialisation: null stays NULL, else the type's serialiser, else the value's text. */
  private serialise(value: unknown, type: number | undefined): string | null {
    if (value === null || value === undefined) return null;
    const serialiser = type === undefined ? undefined : this.pglite.serializers[type];
    return serialiser ? serialiser(value) : String(value);
  }
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}
