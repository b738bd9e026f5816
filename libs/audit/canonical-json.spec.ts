import { describe, expect, it } from 'vitest';
import { canonicalJson } from './canonical-json.js';

describe('canonicalJson', () => {
  it('sorts keys at every depth and writes no whitespace', () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: null, y: true }], c: 'x' } })).toBe('{"a":{"c":"x","d":[3,{"y":true,"z":null}]},"b":1}');
  });

  it('sorts by UTF-16 code units, as RFC 8785 does', () => {
    // "é" (U+00E9) sorts after "z"; the emoji's high surrogate (U+D83D) sorts before U+FB33.
    expect(canonicalJson({ é: 1, z: 2, '\ufb33': 3, '😀': 4 })).toBe('{"z":2,"é":1,"😀":4,"דּ":3}');
  });

  it('writes numbers and strings as ECMAScript does', () => {
    expect(canonicalJson([1.0, 1e21, 0.1, -0, 1e-7])).toBe('[1,1e+21,0.1,0,1e-7]');
    expect(canonicalJson('line\nbreak "quoted" \u0001 \ud800')).toBe('"line\\nbreak \\"quoted\\" \\u0001 \\ud800"');
  });

  it('gives equal values one form, whatever the key order they were built in', () => {
    expect(canonicalJson({ x: 1, y: [{ b: 2, a: 1 }] })).toBe(canonicalJson({ y: [{ a: 1, b: 2 }], x: 1 }));
  });

  it('refuses what JSON cannot carry instead of dropping it', () => {
    expect(() => canonicalJson({ a: undefined })).toThrow(TypeError);
    expect(() => canonicalJson(Number.NaN)).toThrow(TypeError);
    expect(() => canonicalJson(Number.POSITIVE_INFINITY)).toThrow(TypeError);
    expect(() => canonicalJson(10n)).toThrow(TypeError);
    expect(() => canonicalJson(() => 1)).toThrow(TypeError);
  });
});
