import { beforeAll, expect, it } from 'vitest';
import { describeOnBothBackends } from '../../test/support/backends.js';
import { DpopProofStore } from './dpop-proof-store.js';

describeOnBothBackends('DpopProofStore contract', ({ db }) => {
  let store: DpopProofStore;
  beforeAll(() => {
    store = new DpopProofStore(db());
  });

  it('claims a proof once: the second use of the same jti hash is refused', async () => {
    const expiresAt = Date.now() + 60_000;
    expect(await store.claim('jti-once', expiresAt)).toBe(true);
    expect(await store.claim('jti-once', expiresAt)).toBe(false);
    expect(await store.claim('jti-other', expiresAt)).toBe(true);
  });

  it('lets exactly one of many concurrent claims of the same proof win', async () => {
    const outcomes = await Promise.all(Array.from({ length: 12 }, () => store.claim('jti-raced', Date.now() + 60_000)));
    expect(outcomes.filter(Boolean)).toHaveLength(1);
  });

  it('stores the expiry as the epoch milliseconds it was given', async () => {
    const expiresAt = 1_900_000_000_123;
    await store.claim('jti-ms', expiresAt);
    const { rows } = await db().query<{ ms: number }>(
      `SELECT (extract(epoch FROM expires_at) * 1000)::float8 AS ms FROM dpop_proofs WHERE jti_hash = $1`,
      ['jti-ms'],
    );
    expect(Number(rows[0]!.ms)).toBe(expiresAt);
  });

  it('sweeps only proofs past their expiry plus the margin, at most `limit` per call', async () => {
    const now = Date.now();
    for (const n of [1, 2, 3]) await store.claim(`jti-old-${n}`, now - 3_600_000);
    await store.claim('jti-in-margin', now - 1_000);
    await store.claim('jti-fresh', now + 60_000);
    expect(await store.sweep(2, 60_000)).toBe(2);
    expect(await store.sweep(10, 60_000)).toBe(1);
    expect(await store.sweep(10, 60_000)).toBe(0);
    // Swept, an old proof could be claimed again (its iat now refuses it); the others still refuse.
    expect(await store.claim('jti-old-1', now + 60_000)).toBe(true);
    expect(await store.claim('jti-in-margin', now + 60_000)).toBe(false);
    expect(await store.claim('jti-fresh', now + 60_000)).toBe(false);
  });
});
