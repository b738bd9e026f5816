/**
 * Canonical JSON, the form an audit event is hashed in: object keys sorted by UTF-16 code units at
 * every depth, no whitespace, strings and numbers as JSON.stringify writes them (ECMAScript number
 * serialisation, lone surrogates escaped). For the JSON values audit events hold this is the JSON
 * Canonicalization Scheme (RFC 8785), so a verifier in another language can reproduce it.
 * Anything JSON cannot carry (undefined, functions, bigint, NaN, Infinity) is refused, not dropped:
 * a value silently left out of the hashed form would be a value nobody can prove.
 */
export function canonicalJson(value: unknown): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`canonical JSON has no form for ${value}`);
      return JSON.stringify(value);
    case 'object': {
      if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
      const record = value as Record<string, unknown>;
      const keys = Object.keys(record).sort();
      return `{${keys.map((key) => `${JSON.stringify(key)}:${canonicalJson(record[key])}`).join(',')}}`;
    }
    default:
      throw new TypeError(`canonical JSON has no form for a ${typeof value}`);
  }
}
