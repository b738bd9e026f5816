import { describe, expect, it } from 'vitest';
import type { Database, Sql } from '../db/database.js';
import { InvalidClient } from '../errors/errors.js';
import { hashKey, type ApiKey } from './api-key.js';
import type { ApiKeyStore } from './api-key-store.js';
import { ApiKeys } from './api-keys.js';

const ID = '0190a0a0-0000-7000-8000-000000000001';

function key(revoked = false): ApiKey {
  return {
    id: ID,
    role: 'reviewer',
    audience: null,
    label: null,
    jwks: null,
    createdAt: new Date(0),
    revokedAt: revoked ? new Date(0) : null,
  };
}

/** A store holding one key (secret "s3cret"), counting reads; `revoke` marks it revoked. */
function fakeStore() {
  const state = { revoked: false, reads: 0, fail: false };
  const store = {
    async findByHash(hash: string) {
      state.reads++;
      if (state.fail) throw Object.assign(new Error('down'), { code: 'ECONNREFUSED' });
      return hash === hashKey('s3cret') && !state.revoked ? key() : undefined;
    },
    async findById(id: string) {
      state.reads++;
      return id === ID && !state.revoked ? key() : undefined;
    },
    async revoke() {
      if (state.revoked) return undefined;
      state.revoked = true;
      return key(true);
    },
    async find() {
      return key(state.revoked);
    },
  };
  return { state, store: store as unknown as ApiKeyStore };
}

const sql: Sql = { query: async () => ({ rows: [], count: 0 }) as never };
const db = {
  ...sql,
  kind: 'pglite',
  transaction: async <T>(work: (tx: Sql) => Promise<T>) => work(sql),
  ping: async () => {},
  close: async () => {},
} as Database;

describe('ApiKeys', () => {
  it('remembers a looked-up key for ttlMs, then reads it again', async () => {
    let now = 0;
    const { state, store } = fakeStore();
    const keys = new ApiKeys(db, store, { now: () => now }, undefined, 1000);
    expect((await keys.authenticate('s3cret')).id).toBe(ID);
    now = 999;
    await keys.authenticate('s3cret');
    expect(state.reads).toBe(1);
    now = 1000;
    await keys.authenticate('s3cret');
    expect(state.reads).toBe(2);
  });

  it('asks the store once for a burst of requests with one key', async () => {
    const { state, store } = fakeStore();
    const keys = new ApiKeys(db, store, { now: () => 0 }, undefined, 1000);
    await Promise.all(Array.from({ length: 20 }, () => keys.authenticate('s3cret')));
    expect(state.reads).toBe(1);
  });

  it('a key revoked on another replica stops working once the memory runs out', async () => {
    let now = 0;
    const { state, store } = fakeStore();
    const keys = new ApiKeys(db, store, { now: () => now }, undefined, 1000);
    await keys.authenticate('s3cret');
    state.revoked = true; // as another replica would
    await keys.authenticate('s3cret');
    now = 1000;
    await expect(keys.authenticate('s3cret')).rejects.toThrow(InvalidClient);
  });

  it('a key revoked through this replica stops working at once', async () => {
    const { store } = fakeStore();
    const keys = new ApiKeys(db, store, { now: () => 0 }, undefined, 1000);
    await keys.authenticate('s3cret');
    expect(await keys.client(ID)).toBeDefined();
    await keys.revoke(ID, 'admin:test');
    await expect(keys.authenticate('s3cret')).rejects.toThrow(InvalidClient);
    expect(await keys.client(ID)).toBeUndefined();
  });

  it('does not remember a failed lookup', async () => {
    const { state, store } = fakeStore();
    const keys = new ApiKeys(db, store, { now: () => 0 }, undefined, 1000);
    state.fail = true;
    await expect(keys.authenticate('s3cret')).rejects.toThrow('down');
    state.fail = false;
    expect((await keys.authenticate('s3cret')).id).toBe(ID);
  });

  it('accepts the bootstrap key without asking the store, and refuses anything else with 401', async () => {
    const { state, store } = fakeStore();
    const keys = new ApiKeys(db, store, { now: () => 0 }, hashKey('bootstrap-key'), 1000);
    expect(await keys.authenticate('bootstrap-key')).toMatchObject({ id: 'bootstrap', role: 'admin' });
    expect(state.reads).toBe(0);
    for (const presented of [undefined, '', 'wrong', 'x'.repeat(513)]) {
      await expect(keys.authenticate(presented)).rejects.toThrow(InvalidClient);
    }
    expect(await keys.client('not-a-uuid')).toBeUndefined();
  });

  it('does not even look up an oversized key or a client id that is no UUID', async () => {
    const { state, store } = fakeStore();
    const keys = new ApiKeys(db, store, { now: () => 0 }, undefined, 1000);
    await expect(keys.authenticate('x'.repeat(513), 'Basic')).rejects.toMatchObject({ constructor: InvalidClient, challenge: 'Basic' });
    expect(await keys.client('not-a-uuid')).toBeUndefined();
    expect(state.reads).toBe(0);
    await expect(keys.authenticate('x'.repeat(512))).rejects.toThrow(InvalidClient);
    expect(state.reads).toBe(1);
    expect(await keys.client(ID)).toMatchObject({ id: ID });
  });

  it('revoking an already revoked key changes nothing and audits nothing; an unknown id is 404', async () => {
    const { store } = fakeStore();
    const audited: unknown[] = [];
    const recording = {
      ...db,
      transaction: async <T>(work: (tx: Sql) => Promise<T>) =>
        work({ query: async (text: string, params: unknown[]) => (audited.push([text, params]), { rows: [], count: 1 }) } as never),
    } as Database;
    const keys = new ApiKeys(recording, store, { now: () => 0 }, undefined, 1000);
    expect((await keys.revoke(ID, 'admin:test')).revokedAt).not.toBeNull();
    const afterFirst = audited.length;
    expect(afterFirst).toBeGreaterThan(0);
    expect((await keys.revoke(ID, 'admin:test')).revokedAt).not.toBeNull();
    expect(audited).toHaveLength(afterFirst);
    await expect(keys.revoke('not-a-uuid', 'admin:test')).rejects.toThrow(/no such API key/);
    expect(JSON.stringify(audited.slice(0, afterFirst))).toContain('api_key.revoked');
    // A well-formed id of no key: 404, not an empty answer.
    const empty = { revoke: async () => undefined, find: async () => undefined } as unknown as ApiKeyStore;
    await expect(new ApiKeys(recording, empty, { now: () => 0 }, undefined, 1000).revoke(ID, 'admin:test')).rejects.toThrow(
      /no such API key/,
    );
  });
});
