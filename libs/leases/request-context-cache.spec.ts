import { describe, expect, it } from 'vitest';
import { exampleBoundary } from '../policy/boundary.fixture.js';
import { RequestContextCache } from './request-context-cache.js';

const NOW = 1_800_000_000_000;
const task = {
  id: 't1',
  workloadId: 'bot',
  intent: 'order_status',
  subject: 'user-1',
  state: 'active',
  expiresAt: NOW + 600_000,
  createdAt: NOW - 60_000,
  denials: 2,
};
const plain = exampleBoundary({ id: 'plain' });
const governed = exampleBoundary({ id: 'governed', policy: 'permit(principal, action, resource);' });

function clockAt(start: number) {
  const clock = { t: start, now: () => clock.t };
  return clock;
}

describe('RequestContextCache', () => {
  it("counts a denial of a remembered task into its count, as a fresh read would, without extending the entry's life", () => {
    const clock = clockAt(NOW);
    const cache = new RequestContextCache(clock, 1000);
    cache.remember({ now: NOW, task, boundary: governed, policiesKey: '' });
    const before = cache.get('t1', 'governed')!.task!;
    clock.t = NOW + 600;
    cache.denied('t1');
    cache.denied('t1');
    expect(cache.get('t1', 'governed')?.task?.denials).toBe(4);
    // What a request already holds does not change under it.
    expect(before.denials).toBe(2);
    clock.t = NOW + 1000;
    expect(cache.get('t1', 'governed')).toBeUndefined();
  });

  it('never answers with an uncounted denial count (read under a plain boundary) where policies read it', () => {
    const cache = new RequestContextCache({ now: () => NOW });
    cache.remember({ now: NOW, task: { ...task, denials: 0 }, boundary: plain, policiesKey: '' });
    cache.remember({ now: NOW, task: undefined, boundary: governed, policiesKey: '' });
    expect(cache.get('t1', 'plain')?.task?.denials).toBe(0);
    expect(cache.get('t1', 'governed')).toBeUndefined();
    // Global policies read the count under any boundary.
    cache.remember({ now: NOW, task: undefined, boundary: plain, policiesKey: 'p:1' });
    expect(cache.get('t1', 'plain')).toBeUndefined();
    cache.denied('t1');
    cache.remember({ now: NOW, task: undefined, boundary: plain, policiesKey: '' });
    expect(cache.get('t1', 'plain')?.task?.denials).toBe(0);
  });

  it('forgets a task on forgetTask, and denied() of an unknown task remembers nothing', () => {
    const cache = new RequestContextCache({ now: () => NOW });
    cache.denied('t1');
    cache.remember({ now: NOW, task: undefined, boundary: plain, policiesKey: '' });
    expect(cache.get('t1', 'plain')).toBeUndefined();
    cache.remember({ now: NOW, task, boundary: plain, policiesKey: '' });
    cache.forgetTask('t1');
    expect(cache.get('t1', 'plain')).toBeUndefined();
  });
});
