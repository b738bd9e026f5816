/**
 * The JSON Canonicalization Scheme (RFC 8785) for JSON values: object keys sorted by UTF-16 code
 * units at every depth, no whitespace, strings and numbers as JSON.stringify writes them (ECMAScript
 * number serialisation, lone surrogates escaped). The broker digests a call's params with the same
 * function (its own copy, libs/audit/canonical-json.ts; both are tested against RFC 8785's vectors).
 * Anything JSON cannot carry is refused, not dropped: a digest must cover every value the tool sees.
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
