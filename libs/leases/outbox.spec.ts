import { describe, expect, it } from 'vitest';
import { CredentialProviders } from '../credentials/provider.js';
import type { OutboxStore } from './outbox-store.js';
import { CredentialOutbox, DEFAULT_OUTBOX_TIMINGS } from './outbox.js';

const outbox = (random: () => number) => new CredentialOutbox({ store: {} as OutboxStore, providers: new CredentialProviders(), random });

describe('CredentialOutbox.retryDelay', () => {
  it('retries first within 5 s, doubles, and stops at the cap, with jitter in the upper half', () => {
    const low = outbox(() => 0);
    const high = outbox(() => 1);
    expect(high.retryDelay(1)).toBeLessThanOrEqual(5_000);
    expect(low.retryDelay(1)).toBe(DEFAULT_OUTBOX_TIMINGS.firstRetryMs / 2);
    expect(high.retryDelay(2)).toBe(2 * high.retryDelay(1));
    expect(high.retryDelay(3)).toBe(4 * high.retryDelay(1));
    expect(high.retryDelay(30)).toBe(DEFAULT_OUTBOX_TIMINGS.maxRetryMs);
    expect(low.retryDelay(30)).toBe(DEFAULT_OUTBOX_TIMINGS.maxRetryMs / 2);
    // Spread: two replicas retrying the same failure do not come back at the same instant.
    const delays = new Set(Array.from({ length: 20 }, () => outbox(Math.random).retryDelay(4)));
    expect(delays.size).toBeGreaterThan(1);
  });
});
