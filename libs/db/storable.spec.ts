import { describe, expect, it } from 'vitest';
import { findUnstorable, jsonText, MAX_DEPTH, storable } from './storable.js';

/** `levels` nested arrays, built without recursion. */
function nested(levels: number): unknown {
  let value: unknown = [];
  for (let level = 1; level < levels; level++) value = [value];
  return value;
}

describe('findUnstorable', () => {
  it('accepts ordinary JSON, including non-BMP characters written as surrogate pairs', () => {
    expect(findUnstorable({ a: ['x', 1, true, null, { ключ: '😀' }] })).toBeUndefined();
    expect(findUnstorable(nested(MAX_DEPTH))).toBeUndefined();
  });

  it('finds NUL and lone surrogates in values and keys, naming where', () => {
    expect(findUnstorable({ a: { b: ['ok', 'x\u0000'] } })).toEqual({ path: ['a', 'b', 1], reason: 'nul', key: false });
    expect(findUnstorable({ a: '\ud800' })).toEqual({ path: ['a'], reason: 'lone_surrogate', key: false });
    expect(findUnstorable({ a: 'x\udc00y' })).toMatchObject({ reason: 'lone_surrogate' });
    expect(findUnstorable({ a: { '\u0000': 1 } })).toEqual({ path: ['a'], reason: 'nul', key: true });
    expect(findUnstorable({ '\ud83d': 1 })).toEqual({ path: [], reason: 'lone_surrogate', key: true });
    expect(findUnstorable('\u0000')).toEqual({ path: [], reason: 'nul', key: false });
  });

  it(`refuses nesting deeper than ${MAX_DEPTH}, without recursion even at 200,000 levels`, () => {
    expect(findUnstorable(nested(MAX_DEPTH + 1))).toMatchObject({ reason: 'too_deep' });
    expect(findUnstorable({ a: nested(200_000) })).toMatchObject({ reason: 'too_deep', path: ['a', ...Array(MAX_DEPTH - 1).fill(0)] });
  });

  it('refuses numbers JSON cannot carry (1e400 parses to Infinity)', () => {
    expect(findUnstorable(JSON.parse('{"a":{"b":[1,1e400]}}'))).toEqual({ path: ['a', 'b', 1], reason: 'not_finite', key: false });
    expect(findUnstorable({ n: -Infinity })).toMatchObject({ reason: 'not_finite' });
    expect(findUnstorable({ n: NaN })).toMatchObject({ reason: 'not_finite' });
    expect(findUnstorable({ n: 1.7976931348623157e308, m: -0 })).toBeUndefined();
  });

  it('leaves skipped subtrees to their owner', () => {
    expect(
      findUnstorable({ params: { x: '\u0000' }, other: 1 }, { skip: (path) => path.length === 1 && path[0] === 'params' }),
    ).toBeUndefined();
  });
});

describe('jsonText', () => {
  it('is JSON.stringify for parsed JSON', () => {
    for (const value of [null, 1, 'a"b\\c', [1, [2, {}]], { a: [{ b: null }], 'k"': '\u0000\ud800' }, [], {}]) {
      expect(jsonText(value)).toBe(JSON.stringify(value));
    }
  });

  it('writes 200,000 levels deep', () => {
    expect(jsonText(nested(200_000))).toBe(`${'['.repeat(200_000)}${']'.repeat(200_000)}`);
  });
});

describe('storable', () => {
  it('keeps storable values as they are and others as escaped JSON text', () => {
    const fine = { reason: 'x' };
    expect(storable(fine)).toBe(fine);
    expect(storable({ reason: 'x\u0000' })).toEqual({ $unstorable: 'nul', json: '{"reason":"x\\u0000"}' });
    const kept = storable({ '\udc00': 1 });
    expect(JSON.parse((kept as { json: string }).json)).toEqual({ '\udc00': 1 });
    // The record itself holds nothing PostgreSQL refuses.
    expect(findUnstorable(kept)).toBeUndefined();
    expect(findUnstorable(storable({ a: nested(100) }))).toBeUndefined();
  });
});
