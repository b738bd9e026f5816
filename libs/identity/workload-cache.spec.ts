import { describe, expect, it } from 'vitest';
import type { Workload } from './workload.js';
import { CachedWorkloads } from './workload-cache.js';

function workload(revision: number): Workload {
  return {
    id: 'bot',
    jwks: { keys: [] },
    issuerId: null,
    subject: null,
    enabled: true,
    rateLimit: null,
    revision,
    createdAt: new Date(0),
    updatedAt: new Date(0),
  };
}

describe('CachedWorkloads', () => {
  it('serves a workload from memory for ttlMs, then reads it again', async () => {
    let now = 0;
    let revision = 1;
    let reads = 0;
    const cache = new CachedWorkloads(
      { find: async () => (reads++, workload(revision)), findBound: async () => undefined },
      { now: () => now },
      1000,
    );
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

describe('CachedWorkloads.findBound', () => {
  function bound(subject: string, revision = 1): Workload {
    return {
      id: 'bot',
      jwks: null,
      issuerId: 'spire',
      subject,
      enabled: true,
      rateLimit: null,
      revision,
      createdAt: new Date(0),
      updatedAt: new Date(0),
    };
  }

  it('remembers a binding (and its absence) for ttlMs, and re-checks the row it points at', async () => {
    let now = 0;
    let row = bound('spiffe://acme.test/a');
    let bindingReads = 0;
    const source = {
      find: async (id: string) => (id === row.id ? row : undefined),
      findBound: async (issuerId: string, subject: string) => (
        bindingReads++,
        issuerId === row.issuerId && subject === row.subject ? row : undefined
      ),
    };
    const cache = new CachedWorkloads(source, { now: () => now }, 1000);
    expect((await cache.findBound('spire', 'spiffe://acme.test/a'))?.id).toBe('bot');
    expect((await cache.findBound('spire', 'spiffe://acme.test/a'))?.id).toBe('bot');
    expect(await cache.findBound('spire', 'spiffe://acme.test/nobody')).toBeUndefined();
    expect(await cache.findBound('spire', 'spiffe://acme.test/nobody')).toBeUndefined();
    expect(bindingReads).toBe(2);

    // The workload is re-bound to another subject through this replica: the old binding is gone at once.
    row = bound('spiffe://acme.test/b', 2);
    cache.forget('bot');
    expect(await cache.findBound('spire', 'spiffe://acme.test/a')).toBeUndefined();
    expect((await cache.findBound('spire', 'spiffe://acme.test/b'))?.revision).toBe(2);

    // Through another replica: the remembered id's row no longer carries the binding once it is read again.
    now = 5000;
    expect((await cache.findBound('spire', 'spiffe://acme.test/b'))?.id).toBe('bot');
    row = bound('spiffe://acme.test/c', 3);
    now = 6000;
    expect(await cache.findBound('spire', 'spiffe://acme.test/b')).toBeUndefined();
  });
});
