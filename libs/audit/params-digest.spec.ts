import { describe, expect, it } from 'vitest';
import { paramsDigest } from './params-digest.js';

describe('paramsDigest', () => {
  it('is base64url SHA-256 of the canonical JSON; absent params digest as null', () => {
    expect(paramsDigest(undefined)).toBe('dCNOmK_nSY-12vHzasLXiswzlGT5UHA7jAGYkvmCuQs');
    expect(paramsDigest(null)).toBe(paramsDigest(undefined));
    expect(paramsDigest({ b: 1, a: [true, 'x'] })).toBe(paramsDigest({ a: [true, 'x'], b: 1 }));
    expect(paramsDigest({ amount: 49 })).not.toBe(paramsDigest({ amount: 5000 }));
  });
});
