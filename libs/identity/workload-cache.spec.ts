import { describe, expect, it } from 'vitest';
import type { Workload } from './workload.js';
import { CachedWorkloads } from './workload-cache.js';

function workload(revision: number): Workload {
  return { id: 'bot', jwks: { keys: [] }, issuerId: null, subject: null, enabled: true, revision, createdAt: new Date(0), updatedAt: new Date(0) };
}

describe('CachedWorkloads', () => {
  it('serves a workload from memory for ttlMs, then reads it again', async () => {
    let now = 0;
    let revision = 1;
    let reads = 0;
    const cache = new CachedWorkloads({ find: async () => (reads++, workload(revision)), findBound: async () => undefined }, { now: () => now }, 1000);
    expect((await cache.find('bot'))?.revision).toBe(1);
    revision = 2;
    now = 999;
    expect((await cache.find('bot'))?.revision).toBe(1);
    now = 1000;
    expect((await cache.find('bot'))?.revision).toBe(2);
    expect(reads).toBe(2);
  });

  it('forgets a workload changed through this replica at once', async () => {
    let revision = 1;
    const cache = new CachedWorkloads({ find: async () => workload(revision), findBound: async () => undefined }, { now: () => 0 }, 1000);
    await cache.find('bot');
    revision = 2;
    cache.forget('bot');
    expect((await cache.find('bot'))?.revision).toBe(2);
  });

  it('remembers that a workload does not exist, too', async () => {
    let reads = 0;
    const cache = new CachedWorkloads({ find: async () => (reads++, undefined), findBound: async () => undefined }, { now: () => 0 }, 1000);
    expect(await cache.find('ghost')).toBeUndefined();
    expect(await cache.find('ghost')).toBeUndefined();
    expect(reads).toBe(1);
  });
});
