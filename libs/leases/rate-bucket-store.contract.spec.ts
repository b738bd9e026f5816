import { beforeAll, expect, it } from 'vitest';
import { describeOnBothBackends } from '../../test/support/backends.js';
import { RateBucketStore } from './rate-bucket-store.js';

describeOnBothBackends('RateBucketStore contract', ({ db }) => {
  let store: RateBucketStore;
  beforeAll(() => {
    store = new RateBucketStore(db());
  });

  it('starts a new bucket full and takes whole tokens from it, never more than it holds', async () => {
    const still = { perSecond: 0, burst: 5 };
    expect(await store.claim('wl-a', 2, still)).toEqual({ granted: 2, tokens: 3 });
    expect(await store.claim('wl-a', 5, still)).toEqual({ granted: 3, tokens: 0 });
    expect(await store.claim('wl-a', 1, still)).toEqual({ granted: 0, tokens: 0 });
  });

  it('keeps fractional tokens and refills by the time passed, capped at the burst', async () => {
    expect(await store.claim('wl-frac', 1, { perSecond: 0, burst: 2.5 })).toEqual({ granted: 1, tokens: 1.5 });
    await store.claim('wl-fill', 3, { perSecond: 1_000, burst: 3 });
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(await store.claim('wl-fill', 0, { perSecond: 1_000, burst: 3 })).toEqual({ granted: 0, tokens: 3 });
  });

  it('keeps one bucket per kind of request for the same workload', async () => {
    const limit = { perSecond: 0, burst: 2 };
    expect((await store.claim('wl-b', 2, limit, 'credential')).granted).toBe(2);
    expect((await store.claim('wl-b', 2, limit, 'task_open')).granted).toBe(2);
    expect((await store.claim('wl-b', 1, limit, 'credential')).granted).toBe(0);
    const { rows } = await db().query<{ bucket: string }>(`SELECT bucket FROM rate_buckets WHERE workload_id = 'wl-b' ORDER BY bucket`);
    expect(rows.map((r) => r.bucket)).toEqual(['credential', 'task_open']);
  });

  it('never grants more than the bucket held to concurrent claims (the row lock makes them take turns)', async () => {
    const limit = { perSecond: 0, burst: 10 };
    const claims = await Promise.all(Array.from({ length: 25 }, () => store.claim('wl-race ☃', 1, limit)));
    expect(claims.reduce((sum, c) => sum + c.granted, 0)).toBe(10);
    expect(claims.filter((c) => c.granted === 1)).toHaveLength(10);
  });
});
