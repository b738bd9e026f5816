/**
 * Values PostgreSQL cannot keep, and values we refuse to carry: `text` and `jsonb` reject U+0000
 * (NUL), a lone UTF-16 surrogate has no UTF-8 form at all, a number past JSON's range parses to
 * Infinity (which no JSON text can carry back), and JSON nested deeper than any of our
 * documents needs would overflow the stack of every recursive walker after us (JSON.stringify, zod,
 * Cedar). Input is checked against these once, at the edge, so that it gets a 400 naming the field
 * instead of a 500 from the driver; a credential request's params, which must be decided and
 * recorded whatever they hold, are kept in `storable`'s form instead.
 *
 * Every walk here is iterative: the input may be 200,000 levels deep.
 */

/** Deepest nesting of objects and arrays accepted anywhere (a document is level 1). */
export const MAX_DEPTH = 32;

export type UnstorableReason = 'nul' | 'lone_surrogate' | 'too_deep' | 'not_finite';

export interface Unstorable {
  /** Where: object keys and array indexes from the root. */
  path: (string | number)[];
  reason: UnstorableReason;
  /** True when the offending string is an object key under `path`, not the value at it. */
  key: boolean;
}

const DESCRIPTIONS: Record<UnstorableReason, string> = {
  nul: 'must not contain U+0000 (NUL)',
  lone_surrogate: 'must not contain unpaired UTF-16 surrogates (broken unicode)',
  too_deep: `must not nest objects and arrays deeper than ${MAX_DEPTH} levels`,
  not_finite: 'must not hold a number JSON cannot carry (such as 1e400, which parses to Infinity)',
};

/** A message for a client: names the field, never echoes the offending text. */
export function describeUnstorable(problem: Unstorable): string {
  return problem.key ? `keys ${DESCRIPTIONS[problem.reason]}` : DESCRIPTIONS[problem.reason];
}

/** The problem with one string, if any. */
export function stringProblem(value: string): Exclude<UnstorableReason, 'too_deep'> | undefined {
  if (value.includes('\u0000')) return 'nul';
  if (!value.isWellFormed()) return 'lone_surrogate';
  return undefined;
}

/**
 * The first value under `root` that cannot be stored or is refused, depth first, or undefined.
 * `skip` names subtrees left to their owner (a credential request's params are decided, not refused).
 */
export function findUnstorable(
  root: unknown,
  options: { skip?: (path: readonly (string | number)[]) => boolean } = {},
): Unstorable | undefined {
  const stack: { value: unknown; path: (string | number)[]; depth: number }[] = [{ value: root, path: [], depth: 0 }];
  while (stack.length > 0) {
    const { value, path, depth } = stack.pop()!;
    if (path.length > 0 && options.skip?.(path)) continue;
    if (typeof value === 'string') {
      const reason = stringProblem(value);
      if (reason) return { path, reason, key: false };
      continue;
    }
    // JSON.parse turns an out-of-range literal (1e400) into Infinity: stored, it would come back as
    // null, and a params digest (RFC 8785) has no form for it.
    if (typeof value === 'number' && !Number.isFinite(value)) return { path, reason: 'not_finite', key: false };
    if (value === null || typeof value !== 'object') continue;
    if (depth + 1 > MAX_DEPTH) return { path, reason: 'too_deep', key: false };
    if (Array.isArray(value)) {
      for (let index = value.length - 1; index >= 0; index--) stack.push({ value: value[index], path: [...path, index], depth: depth + 1 });
      continue;
    }
    const entries = Object.entries(value as Record<string, unknown>);
    for (const [key] of entries) {
      const reason = stringProblem(key);
      if (reason) return { path, reason, key: true };
    }
    for (let index = entries.length - 1; index >= 0; index--) {
      const [key, member] = entries[index]!;
      stack.push({ value: member, path: [...path, key], depth: depth + 1 });
    }
  }
  return undefined;
}

/**
 * JSON.stringify for parsed JSON (plain objects, arrays, strings, finite numbers, booleans, null),
 * without recursion: safe on input of any depth. Lone surrogates and NUL come out escaped
 * (`\ud800`, `\u0000`), so the text itself is storable.
 */
export function jsonText(root: unknown): string {
  const out: string[] = [];
  // Work items: a value to write, or literal text (closing brackets, commas, keys).
  const stack: ({ value: unknown } | string)[] = [{ value: root }];
  while (stack.length > 0) {
    const item = stack.pop()!;
    if (typeof item === 'string') {
      out.push(item);
      continue;
    }
    const { value } = item;
    if (value === null || typeof value !== 'object') {
      out.push(JSON.stringify(value) ?? 'null');
      continue;
    }
    if (Array.isArray(value)) {
      out.push('[');
      stack.push(']');
      for (let index = value.length - 1; index >= 0; index--) {
        stack.push({ value: value[index] === undefined ? null : value[index] });
        if (index > 0) stack.push(',');
      }
      continue;
    }
    const entries = Object.entries(value as Record<string, unknown>).filter(([, member]) => member !== undefined);
    out.push('{');
    stack.push('}');
    for (let index = entries.length - 1; index >= 0; index--) {
      const [key, member] = entries[index]!;
      stack.push({ value: member });
      stack.push(`${JSON.stringify(key)}:`);
      if (index > 0) stack.push(',');
    }
  }
  return out.join('');
}

/** How an unstorable value is recorded: the reason, and the exact input as escaped JSON text. */
export interface UnstorableRecord {
  $unstorable: UnstorableReason;
  json: string;
}

/**
 * A value as it can be recorded: itself when storable, otherwise `{"$unstorable": reason, "json":
 * "<escaped JSON text>"}`, which keeps everything the caller sent (a refusal is evidence).
 * `problem`: what findUnstorable already said of `value`, so that it is walked once.
 */
export function storable<T>(value: T, problem: Unstorable | undefined = findUnstorable(value)): T | UnstorableRecord {
  if (!problem) return value;
  return { $unstorable: problem.reason, json: jsonText(value) };
}
