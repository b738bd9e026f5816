/**
 * The filters that were given, as a WHERE clause of numbered conditions (`?` becomes the parameter's
 * place), or '' when none was given. Shared by every store's review listing.
 */
export function conditions(filters: ReadonlyArray<readonly [string, unknown]>): { where: string; params: unknown[] } {
  const clauses: string[] = [];
  const params: unknown[] = [];
  for (const [clause, value] of filters) {
    if (value === undefined || value === '') continue;
    params.push(value);
    clauses.push(clause.replace('?', `$${params.length}`));
  }
  return { where: clauses.length ? `WHERE ${clauses.join(' AND ')}` : '', params };
}
