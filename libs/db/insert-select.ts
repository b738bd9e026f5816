/**
 * `INSERT INTO table (columns) SELECT expressions FROM …`, as the body of a CTE. The owner of a
 * table wraps it with the table's name and its column names, so a statement that must write several
 * tables at once (one round trip, one transaction: a permit, a revocation and its event) still
 * leaves each table's INSERT with that table's owner. `values` maps each column to its SQL
 * expression, in the order written (a column left undefined is not written); `from` is the FROM clause (with its WHERE, if any).
 */
export function insertSelect<C extends string>(table: string, values: Partial<Record<C, string>>, from: string): string {
  const columns = (Object.keys(values) as C[]).filter((column) => values[column] !== undefined);
  return `INSERT INTO ${table} (${columns.join(', ')})
         SELECT ${columns.map((column) => values[column]).join(', ')}
           ${from}`;
}
