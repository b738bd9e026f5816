import { describe, expect, it } from 'vitest';
import { ExpiringMap } from './expiring-map.js';

describe('ExpiringMap', () => {
  it('serves an entry until its time, not at or after it', () => {
    const map = new ExpiringMap<string, number>(10);
    map.set('a', 1, 100, 0);
    expect(map.get('a', 99)).toBe(1);
    expect(map.get('a', 100)).toBeUndefined();
  });

  it('when full, drops expired entries first, and everything only if that is not enough', () => {
    const map = new ExpiringMap<string, number>(2);
    map.set('old', 1, 10, 0);
    map.set('live', 2, 1000, 0);
    map.set('new', 3, 1000, 50);
    expect([map.get('old', 50), map.get('live', 50), map.get('new', 50)]).toEqual([undefined, 2, 3]);
    map.set('more', 4, 1000, 60);
    expect([map.get('live', 60), map.get('new', 60), map.get('more', 60)]).toEqual([undefined, undefined, 4]);
  });
});
