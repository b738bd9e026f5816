import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../audit/canonical-json.js';
import { paramsHash, sameBinding } from './approval.js';

describe('approval binding', () => {
  it('hashes params as canonical JSON: key order is irrelevant, values are not', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, { z: 1, y: 2 }], c: 'x' } })).toBe('{"a":{"c":"x","d":[1,{"y":2,"z":1}]},"b":1}');
    expect(paramsHash({ amount: 150, order: 'o1' })).toBe(paramsHash({ order: 'o1', amount: 150 }));
    expect(paramsHash({ amount: 150 })).not.toBe(paramsHash({ amount: 151 }));
    expect(paramsHash({ amount: 150 })).not.toBe(paramsHash({ amount: '150' }));
    expect(paramsHash(undefined)).toBe(paramsHash(null));
    expect(paramsHash({})).not.toBe(paramsHash(null));
    // Many keys, given in reverse: only a real ordering puts them back (two keys can sort by luck).
    const letters = 'abcdefghijklmnop'.split('');
    const forward = Object.fromEntries(letters.map((key, i) => [key, i]));
    const reverse = Object.fromEntries([...letters].reverse().map((key) => [key, forward[key]]));
    expect(canonicalJson(reverse)).toBe(JSON.stringify(forward));
    expect(paramsHash(reverse)).toBe(paramsHash(forward));
    // Hashes stored before approvals used the audit chain's canonical JSON stay valid: pinned values.
    expect(
      paramsHash({
        order: 'o1',
        amount: 349,
        reason: 'broken \u00e9 😀',
        nested: { b: [1, 'x', { z: 0.1, y: -0 }], a: null, '\ufb33': true },
      }),
    ).toBe('CLLZC16_-gFCNgWr6tecWjmWTQuN99lWHUE0CQAldZA');
    expect(paramsHash(null)).toBe('dCNOmK_nSY-12vHzasLXiswzlGT5UHA7jAGYkvmCuQs');
  });

  it('binds workload, task, boundary, action, resource, params and purpose', () => {
    const base = { workloadId: 'w', taskId: 't', boundaryId: 'b', action: 'a', resource: 'r', paramsHash: 'h', purpose: 'p' };
    expect(sameBinding(base, { ...base })).toBe(true);
    for (const key of Object.keys(base) as (keyof typeof base)[]) expect(sameBinding(base, { ...base, [key]: 'other' })).toBe(false);
    expect(sameBinding(base, { ...base, resource: null })).toBe(false);
    expect(sameBinding(base, { ...base, purpose: null })).toBe(false);
  });
});
