import { describe, expect, it } from 'vitest';
import { canonicalJson } from './canonical-json.js';
import { paramsDigest } from './params-digest.js';

describe('canonicalJson (RFC 8785)', () => {
  it('writes the RFC 8785 §3.2.2 example exactly', () => {
    const input = JSON.parse(
      '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001], "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/", "literals": [null, true, false]}',
    );
    expect(canonicalJson(input)).toBe(
      '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}',
    );
  });

  it('sorts keys by UTF-16 code units (RFC 8785 §3.2.3)', () => {
    const input = JSON.parse(
      '{"\\u20ac": "Euro Sign", "\\r": "Carriage Return", "\\ufb33": "Hebrew Letter Dalet With Dagesh", "1": "One", "\\ud83d\\ude00": "Emoji: Grinning Face", "\\u0080": "Control", "\\u00f6": "Latin Small Letter O With Diaeresis"}',
    );
    expect(canonicalJson(input)).toBe(
      '{"\\r":"Carriage Return","1":"One","\u0080":"Control","ö":"Latin Small Letter O With Diaeresis","€":"Euro Sign","😀":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}',
    );
  });

  it.each([
    [0, '0'],
    [-0, '0'],
    [1e21, '1e+21'],
    [5e-324, '5e-324'],
    [9007199254740992, '9007199254740992'],
    [1e23, '1e+23'],
    [0.000001, '0.000001'],
    [1e-7, '1e-7'],
    [295147905179352830000, '295147905179352830000'],
    [-1.7976931348623157e308, '-1.7976931348623157e+308'],
  ])('writes the number %s as %s (RFC 8785 appendix B)', (value, text) => {
    expect(canonicalJson(value)).toBe(text);
  });

  it('nests, and refuses what JSON cannot carry rather than dropping it', () => {
    expect(canonicalJson({ b: [{ d: 1, c: 'x' }], a: {} })).toBe('{"a":{},"b":[{"c":"x","d":1}]}');
    expect(canonicalJson('\ud800')).toBe('"\\ud800"');
    expect(() => canonicalJson(Number.NaN)).toThrow(TypeError);
    expect(() => canonicalJson({ a: undefined })).toThrow(TypeError);
    expect(() => canonicalJson(1n)).toThrow(TypeError);
  });
});

describe('paramsDigest', () => {
  it('is base64url(SHA-256) of the canonical JSON; absent params are digested as null', () => {
    // sha256("null") and sha256('{"amount":49,"order":"o-1"}'), computed independently.
    expect(paramsDigest(undefined)).toBe('dCNOmK_nSY-12vHzasLXiswzlGT5UHA7jAGYkvmCuQs');
    expect(paramsDigest(null)).toBe('dCNOmK_nSY-12vHzasLXiswzlGT5UHA7jAGYkvmCuQs');
    expect(paramsDigest({ order: 'o-1', amount: 49 })).toBe('RWFQv1ETcELTM7iVrOCC8fOGAUqVF52s1r4nGgvPqPg');
    expect(paramsDigest({ order: 'o-1', amount: 5000 })).not.toBe(paramsDigest({ order: 'o-1', amount: 49 }));
  });
});
