import { describe, expect, it } from 'vitest';
import type { RateLimit } from '../config/config.js';
import { RateLimited } from '../errors/errors.js';
import { HOLD_MS, RateLimiter, type RateBuckets } from './rate-limit.js';

/** The shared bucket as the statement keeps it, on a clock the test turns; counts the claims. */
function buckets(clock: { now: number }) {
  const state = new Map<string, { tokens: number; at: number }>();
  const fake: RateBuckets & { claims: number[] } = {
    claims: [],
    async claim(workloadId: string, want: number, limit: RateLimit) {
      fake.claims.push(want);
      const bucket = state.get(workloadId) ?? { tokens: limit.burst, at: clock.now };
      const available = Math.min(limit.burst, bucket.tokens + (limit.perSecond * (clock.now - bucket.at)) / 1000);
      const granted = Math.min(want, Math.floor(available));
      state.set(workloadId, { tokens: available - granted, at: clock.now });
      return { granted, tokens: available - granted };
    },
  };
  return fake;
}

describe('RateLimiter', () => {
  it('claims a batch worth HOLD_MS of the rate and spends it without asking again', async () => {
    const clock = { now: 0 };
    const store = buckets(clock);
    const limiter = new RateLimiter(store, { perSecond: 200, burst: 400 }, { now: () => clock.now });
    for (let i = 0; i < 20; i++) await limiter.take('bot');
    expect(store.claims).toEqual([20]);
    await limiter.take('bot');
    expect(store.claims).toEqual([20, 20]);
    expect((200 * HOLD_MS) / 1000).toBe(20);
  });

  it('refuses with the seconds until the next token, rounded up, and lets the bucket refill', async () => {
    const clock = { now: 0 };
    const limiter = new RateLimiter(buckets(clock), { perSecond: 0.5, burst: 2 }, { now: () => clock.now });
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

  it('drops tokens it held longer than HOLD_MS instead of spending them late', async () => {
    const clock = { now: 0 };
    const store = buckets(clock);
    const limiter = new RateLimiter(store, { perSecond: 100, burst: 10 }, { now: () => clock.now });
    await limiter.take('bot');
    clock.now += HOLD_MS;
    await limiter.take('bot');
    expect(store.claims).toEqual([10, 10]);
  });

  it('has one claim in flight per workload: concurrent requests share its batch', async () => {
    const clock = { now: 0 };
    const store = buckets(clock);
    const limiter = new RateLimiter(store, { perSecond: 100, burst: 100 }, { now: () => clock.now });
    await Promise.all(Array.from({ length: 10 }, () => limiter.take('bot')));
    expect(store.claims).toEqual([10]);
  });

  it('keeps workloads apart', async () => {
    const clock = { now: 0 };
    const limiter = new RateLimiter(buckets(clock), { perSecond: 1, burst: 1 }, { now: () => clock.now });
    await limiter.take('a');
    await expect(limiter.take('a')).rejects.toBeInstanceOf(RateLimited);
    await expect(limiter.take('b')).resolves.toBeUndefined();
  });
});
