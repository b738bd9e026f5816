import { describe, expect, it } from 'vitest';
import { ExpiringMap } from './expiring-map.js';

describe('ExpiringMap', () => {
  it('serves an entry until its time, not at or after it', () => {
    const map = new ExpiringMap<string, number>(10);
    map.set('a', 1, 100, 0);
    expect(map.get('a', 99)).toBe(1);
    expect(map.get('a', 100)).toBeUndefined();
  });

  it('when full, drops an expired entry first, else the least recently used one, never everything', () => {
    const map = new ExpiringMap<string, number>(2);
    map.set('old', 1, 10, 0);
    map.set('live', 2, 1000, 0);
    map.set('new', 3, 1000, 50);
    expect([map.get('old', 50), map.get('live', 50), map.get('new', 50)]).toEqual([undefined, 2, 3]);
    // 'live' was read before 'new': 'live' is the least recently used and goes; 'new' stays.
    map.set('more', 4, 1000, 60);
    expect([map.get('live', 60), map.get('new', 60), map.get('more', 60)]).toEqual([undefined, 3, 4]);
    expect(map.size).toBe(2);
  });

  it('keeps the entries in use through a flood of new keys', () => {
    const map = new ExpiringMap<string, number>(1000);
    for (let i = 0; i < 1000; i++) map.set(`warm-${i}`, i, 1e9, 0);
    for (let i = 0; i < 5000; i++) {
      // The working set is read between the flood's writes, so it stays the most recently used.
      if (i % 10 === 0) for (let j = 0; j < 100; j++) map.get(`warm-${j}`, 1);
      map.set(`flood-${i}`, i, 1e9, 1);
    }
    expect(map.size).toBe(1000);
    for (let j = 0; j < 100; j++) expect(map.get(`warm-${j}`, 1)).toBe(j);
  });

  it('setting a key again refreshes it without growing', () => {
    const map = new ExpiringMap<string, number>(2);
    map.set('a', 1, 100, 0);
    map.set('b', 2, 100, 0);
    map.set('a', 3, 100, 0);
    map.set('c', 4, 100, 0);
    expect([map.get('a', 1), map.get('b', 1), map.get('c', 1), map.size]).toEqual([3, undefined, 4, 2]);
  });
});
