import { beforeAll, expect, it } from 'vitest';
import { describeOnBothBackends } from '../../test/support/backends.js';
import { TemporarilyUnavailable } from '../errors/index.js';

/**
 * Named statements (`Sql.query`'s `name`): prepared once per session on both backends (pg does it
 * on PostgreSQL; PgliteStatements on the embedded PGlite), answering exactly as the same statement
 * sent unnamed.
 */
const TYPED = `SELECT $1::int AS i, $2::float8 AS f, $3::text AS t, $4::boolean AS b, $5::jsonb AS j, $6::uuid[] AS ids,
                      to_timestamp($7::float8 / 1000) AS at, $8::text AS nothing, $9::bigint AS big, $10::int[] AS ints`;
const TYPED_PARAMS = [
  7,
  2.5,
  "it's",
  false,
  JSON.stringify({ a: [1, 'x'], b: null }),
  ['0190a8d2-7f3e-7000-8000-000000000001', '0190a8d2-7f3e-7000-8000-000000000002'],
  1_700_000_000_123,
  null,
  '9007199254740993',
  [3, 1, 2],
];

function codeOf(error: unknown): unknown {
  for (let e: unknown = error, depth = 0; e && typeof e === 'object' && depth < 4; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    e = (e as { driverError?: unknown; cause?: unknown }).driverError ?? (e as { cause?: unknown }).cause;
  }
  return undefined;
}

describeOnBothBackends('named statements (contract)', ({ db }) => {
  beforeAll(async () => {
    await db().query('CREATE TABLE named_scratch (id int PRIMARY KEY, note text)');
  });

  it('answer as the same statement sent unnamed: values, types and row counts', async () => {
    const unnamed = await db().query(TYPED, TYPED_PARAMS);
    const named = await db().query(TYPED, TYPED_PARAMS, 'tollgate_test_typed');
    const again = await db().query(TYPED, TYPED_PARAMS, 'tollgate_test_typed');
    expect(named).toEqual(unnamed);
    expect(again).toEqual(unnamed);
    expect(named.rows[0]).toMatchObject({ i: 7, f: 2.5, t: "it's", b: false, j: { a: [1, 'x'], b: null }, nothing: null });

    const insert = 'INSERT INTO named_scratch (id, note) SELECT n, $2::text FROM generate_series(1, $1::int) AS n';
    expect(await db().query(insert, [3, 'x'], 'tollgate_test_insert')).toEqual({ rows: [], count: 3 });
    const update = 'UPDATE named_scratch SET note = $1 WHERE id <= $2 RETURNING id';
    const updated = await db().query<{ id: number }>(update, ['y', 2], 'tollgate_test_update');
    expect(updated.count).toBe(2);
    expect(updated.rows.map((row) => row.id).sort()).toEqual([1, 2]);
  });

  it('are prepared once on the session, under their name', async () => {
    const prepared = await db().transaction(async (tx) => {
      await tx.query('SELECT $1::int AS n', [1], 'tollgate_test_prepared');
      await tx.query('SELECT $1::int AS n', [2], 'tollgate_test_prepared');
      return tx.query<{ name: string }>('SELECT name FROM pg_prepared_statements WHERE name = $1', ['tollgate_test_prepared']);
    });
    expect(prepared.rows).toEqual([{ name: 'tollgate_test_prepared' }]);
  });

  it('refuse a name already prepared with another text', async () => {
    const reused = db().transaction(async (tx) => {
      await tx.query('SELECT 1 AS one', [], 'tollgate_test_reused');
      await tx.query('SELECT 2 AS two', [], 'tollgate_test_reused');
    });
    await expect(reused).rejects.toThrow(/tollgate_test_reused/);
  });

  it('fail with the driver code (not a 503), roll their transaction back, and work again after', async () => {
    const insert = 'INSERT INTO named_scratch (id, note) VALUES ($1, $2)';
    await db().query(insert, [100, 'first'], 'tollgate_test_unique');
    const duplicate = await db()
      .query(insert, [100, 'again'], 'tollgate_test_unique')
      .then(
        () => undefined,
        (error: unknown) => error,
      );
    expect(duplicate).toBeInstanceOf(Error);
    expect(duplicate).not.toBeInstanceOf(TemporarilyUnavailable);
    expect(codeOf(duplicate)).toBe('23505');

    const rolledBack = db().transaction(async (tx) => {
      await tx.query(insert, [101, 'in tx'], 'tollgate_test_unique');
      await tx.query(insert, [100, 'clash'], 'tollgate_test_unique');
    });
    await expect(rolledBack).rejects.toMatchObject({});
    expect(codeOf(await rolledBack.catch((error: unknown) => error))).toBe('23505');
    const { rows } = await db().query<{ id: number }>('SELECT id FROM named_scratch WHERE id >= 100 ORDER BY id');
    expect(rows).toEqual([{ id: 100 }]);

    expect((await db().query(insert, [102, 'after'], 'tollgate_test_unique')).count).toBe(1);
  });
});
