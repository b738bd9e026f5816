import { describe, expect, it } from 'vitest';
import type { RateLimit } from '../config/config.js';
import { RateLimited } from '../errors/errors.js';
import { HOLD_MS, RateLimiter, type RateBuckets } from './rate-limit.js';

/** The shared bucket as the statement keeps it, on a clock the test turns; counts the claims. */
function buckets(clock: { now: number }) {
  const state = new Map<string, { tokens: number; at: number }>();
  const fake: RateBuckets & { claims: number[] } = {
    claims: [],
    async claim(workloadId: string, want: number, limit: RateLimit, kind: string) {
      fake.claims.push(want);
      const key = `${kind}:${workloadId}`;
      const bucket = state.get(key) ?? { tokens: limit.burst, at: clock.now };
      const available = Math.min(limit.burst, bucket.tokens + (limit.perSecond * (clock.now - bucket.at)) / 1000);
      const granted = Math.min(want, Math.floor(available));
      state.set(key, { tokens: available - granted, at: clock.now });
      return { granted, tokens: available - granted };
    },
  };
  return fake;
}

describe('RateLimiter', () => {
  it('claims a batch worth HOLD_MS of the rate and spends it without asking again', async () => {
    const clock = { now: 0 };
    const store = buckets(clock);
    const limiter = new RateLimiter({ buckets: store, defaultLimit: { perSecond: 200, burst: 400 }, clock: { now: () => clock.now } });
    for (let i = 0; i < 20; i++) await limiter.take('bot');
    expect(store.claims).toEqual([20]);
    await limiter.take('bot');
    expect(store.claims).toEqual([20, 20]);
    expect((200 * HOLD_MS) / 1000).toBe(20);
  });

  it('refuses with the seconds until the next token, rounded up, and lets the bucket refill', async () => {
    const clock = { now: 0 };
    const limiter = new RateLimiter({
      buckets: buckets(clock),
      defaultLimit: { perSecond: 0.5, burst: 2 },
      clock: { now: () => clock.now },
    });
    await limiter.take('bot');
    await limiter.take('bot');
    const refused = await limiter.take('bot').catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(RateLimited);
    expect((refused as RateLimited).retryAfterSeconds).toBe(2);
    clock.now += 1500;
    expect(((await limiter.take('bot').catch((e: unknown) => e)) as RateLimited).retryAfterSeconds).toBe(1);
    clock.now += 600;
    await expect(limiter.take('bot')).resolves.toBeUndefined();
  });

  it('keeps opening tasks and credential requests in buckets of their own, on the same limit', async () => {
    const clock = { now: 0 };
    const limiter = new RateLimiter({
      buckets: buckets(clock),
      defaultLimit: { perSecond: 0.5, burst: 2 },
      clock: { now: () => clock.now },
    });
    await limiter.take('bot', 'task_open');
    await limiter.take('bot', 'task_open');
    const refused = await limiter.take('bot', 'task_open').catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(RateLimited);
    expect((refused as RateLimited).message).toContain('too many tasks opened');
    await limiter.take('bot');
    await limiter.take('bot');
    expect(((await limiter.take('bot').catch((e: unknown) => e)) as RateLimited).message).toContain('too many credential requests');
  });

  it('drops tokens it held longer than HOLD_MS instead of spending them late', async () => {
    const clock = { now: 0 };
    const store = buckets(clock);
    const limiter = new RateLimiter({ buckets: store, defaultLimit: { perSecond: 100, burst: 10 }, clock: { now: () => clock.now } });
    await limiter.take('bot');
    clock.now += HOLD_MS;
    await limiter.take('bot');
    expect(store.claims).toEqual([10, 10]);
  });

  it('has one claim in flight per workload: concurrent requests share its batch', async () => {
    const clock = { now: 0 };
    const store = buckets(clock);
    const limiter = new RateLimiter({ buckets: store, defaultLimit: { perSecond: 100, burst: 100 }, clock: { now: () => clock.now } });
    await Promise.all(Array.from({ length: 10 }, () => limiter.take('bot')));
    expect(store.claims).toEqual([10]);
  });

  it('keeps workloads apart', async () => {
    const clock = { now: 0 };
    const limiter = new RateLimiter({ buckets: buckets(clock), defaultLimit: { perSecond: 1, burst: 1 }, clock: { now: () => clock.now } });
    await limiter.take('a');
    await expect(limiter.take('a')).rejects.toBeInstanceOf(RateLimited);
    await expect(limiter.take('b')).resolves.toBeUndefined();
  });

  it('keeps the tokens a workload holds to itself, and one bucket for credentials by default', async () => {
    const clock = { now: 0 };
    const store = buckets(clock);
    const limiter = new RateLimiter({ buckets: store, defaultLimit: { perSecond: 100, burst: 100 }, clock: { now: () => clock.now } });
    await limiter.take('a');
    const claimed = store.claims.length;
    // 'a' holds a batch now; 'b' may not spend from it.
    await limiter.take('b');
    expect(store.claims.length).toBe(claimed + 1);
    await limiter.take('a', 'credential');
    expect(store.claims.length).toBe(claimed + 1);
  });

  it('counts as refused only a refusal, not a failing store', async () => {
    const refusals: string[] = [];
    const failing: RateBuckets = { claim: async () => Promise.reject(new Error('database down')) };
    const limiter = new RateLimiter({
      buckets: failing,
      defaultLimit: { perSecond: 1, burst: 1 },
      clock: { now: () => 0 },
      limitOf: async () => undefined,
      refused: (source) => refusals.push(source),
    });
    await expect(limiter.take('a')).rejects.toThrow('database down');
    expect(refusals).toEqual([]);
  });

  it("runs the workload's own limit when it has one, the default otherwise, and nothing with neither", async () => {
    const clock = { now: 0 };
    const store = buckets(clock);
    const own = new Map<string, RateLimit>([
      ['tight', { perSecond: 1, burst: 1 }],
      ['loose', { perSecond: 1, burst: 4 }],
    ]);
    const limiter = new RateLimiter({
      buckets: store,
      defaultLimit: { perSecond: 1, burst: 2 },
      clock: { now: () => clock.now },
      limitOf: async (id) => own.get(id),
    });
    const allowed = async (id: string) => {
      let count = 0;
      while (
        count < 10 &&
        (await limiter.take(id).then(
          () => true,
          () => false,
        ))
      )
        count++;
      return count;
    };
    expect([await allowed('tight'), await allowed('other'), await allowed('loose')]).toEqual([1, 2, 4]);

    const off = new RateLimiter({
      buckets: store,
      defaultLimit: undefined,
      clock: { now: () => clock.now },
      limitOf: async (id) => own.get(id),
    });
    const claimsBefore = store.claims.length;
    for (let i = 0; i < 20; i++) await off.take('unlimited');
    expect(store.claims.length).toBe(claimsBefore);
    await off.take('fresh-tight');
    own.set('fresh-tight', { perSecond: 1, burst: 1 });
    await off.take('fresh-tight');
    await expect(off.take('fresh-tight')).rejects.toBeInstanceOf(RateLimited);
  });

  it('says which limit refused, once per refusal', async () => {
    const clock = { now: 0 };
    const refusals: string[] = [];
    const own = new Map<string, RateLimit>([['tight', { perSecond: 1, burst: 1 }]]);
    const limiter = new RateLimiter({
      buckets: buckets(clock),
      defaultLimit: { perSecond: 1, burst: 1 },
      clock: { now: () => clock.now },
      limitOf: async (id) => own.get(id),
      refused: (source) => refusals.push(source),
    });
    await limiter.take('tight');
    await limiter.take('other');
    expect(refusals).toEqual([]);
    await expect(limiter.take('tight')).rejects.toBeInstanceOf(RateLimited);
    await expect(limiter.take('other')).rejects.toBeInstanceOf(RateLimited);
    await expect(limiter.take('other')).rejects.toBeInstanceOf(RateLimited);
    expect(refusals).toEqual(['workload', 'default', 'default']);
  });

  it('refills a limit written per hour at its own pace: Retry-After in whole seconds until the next token', async () => {
    const clock = { now: 0 };
    const limiter = new RateLimiter({
      buckets: buckets(clock),
      defaultLimit: undefined,
      clock: { now: () => clock.now },
      limitOf: async () => ({ perSecond: 10 / 3600, burst: 1 }),
    });
    await limiter.take('bot');
    const refused = (await limiter.take('bot').catch((e: unknown) => e)) as RateLimited;
    expect(refused.retryAfterSeconds).toBe(360);
  });
});
