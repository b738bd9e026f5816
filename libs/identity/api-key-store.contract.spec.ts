import { randomUUID } from 'node:crypto';
import { beforeAll, expect, it } from 'vitest';
import { describeOnBothBackends } from '../../test/support/backends.js';
import { ApiKeyStore } from './api-key-store.js';

describeOnBothBackends('ApiKeyStore contract', ({ db }) => {
  let store: ApiKeyStore;
  const admin = randomUUID();
  const server = randomUUID();
  beforeAll(() => {
    store = new ApiKeyStore(db());
  });

  it('inserts keys and finds live ones by hash and id, with their JSON keys and unicode label', async () => {
    const jwks = { keys: [{ kty: 'OKP', crv: 'Ed25519', x: '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo' }] };
    const a = await store.insert(db(), { id: admin, hash: 'h-admin', role: 'admin', audience: null, label: 'ops ☂ équipe', jwks: null });
    const s = await store.insert(db(), { id: server, hash: 'h-server', role: 'resource_server', audience: 'crm', label: null, jwks });
    expect(a).toMatchObject({ id: admin, role: 'admin', audience: null, label: 'ops ☂ équipe', jwks: null, revokedAt: null });
    expect(s).toMatchObject({ id: server, role: 'resource_server', audience: 'crm', label: null, jwks });
    expect(a.createdAt).toBeInstanceOf(Date);
    expect(await store.findByHash('h-admin')).toEqual(a);
    expect(await store.findById(server)).toEqual(s);
    expect(await store.findByHash('h-none')).toBeUndefined();
    expect(await store.count()).toBe(2);
  });

  it('refuses a second key with the same hash, and a resource server without an audience', async () => {
    await expect(
      store.insert(db(), { id: randomUUID(), hash: 'h-admin', role: 'reviewer', audience: null, label: null, jwks: null }),
    ).rejects.toThrow();
    await expect(
      store.insert(db(), { id: randomUUID(), hash: 'h-x', role: 'resource_server', audience: null, label: null, jwks: null }),
    ).rejects.toThrow();
    expect(await store.count()).toBe(2);
  });

  it('revokes once: a revoked key is no longer found live but stays listed', async () => {
    const reviewer = randomUUID();
    await store.insert(db(), { id: reviewer, hash: 'h-rev', role: 'reviewer', audience: null, label: '', jwks: null });
    const revoked = await store.revoke(db(), reviewer);
    expect(revoked?.revokedAt).toBeInstanceOf(Date);
    expect(await store.revoke(db(), reviewer)).toBeUndefined();
    expect(await store.findByHash('h-rev')).toBeUndefined();
    expect(await store.findById(reviewer)).toBeUndefined();
    expect((await store.find(reviewer))?.revokedAt).toEqual(revoked?.revokedAt);
    expect(await store.liveIds([admin, server, reviewer, randomUUID()])).toEqual(new Set([admin, server]));
    expect(await store.liveIds([])).toEqual(new Set());
    const listed = await store.list();
    expect(listed.map((k) => k.id)).toEqual([admin, server, reviewer]);
  });

  it('records a client assertion jti once per client; other clients may reuse it', async () => {
    const expires = Date.now() + 60_000;
    expect(await store.recordAssertion(server, 'jti-1', expires)).toBe(true);
    expect(await store.recordAssertion(server, 'jti-1', expires)).toBe(false);
    expect(await store.recordAssertion(admin, 'jti-1', expires)).toBe(true);
  });

  it('lets one of many concurrent uses of the same assertion through', async () => {
    const outcomes = await Promise.all(Array.from({ length: 10 }, () => store.recordAssertion(server, 'jti-raced', Date.now() + 60_000)));
    expect(outcomes.filter(Boolean)).toHaveLength(1);
  });

  it("drops the client's expired jtis on its next assertion, storing the expiry in epoch ms", async () => {
    const past = Date.now() - 1_000;
    expect(await store.recordAssertion(admin, 'jti-old', past)).toBe(true);
    const { rows } = await db().query<{ ms: number }>(
      `SELECT (extract(epoch FROM expires_at) * 1000)::float8 AS ms FROM client_assertions WHERE client_id = $1 AND jti = 'jti-old'`,
      [admin],
    );
    expect(Number(rows[0]!.ms)).toBe(past);
    expect(await store.recordAssertion(admin, 'jti-new', Date.now() + 60_000)).toBe(true);
    // Expired, the old jti was purged; its replay is refused by its expiry, not by the table.
    expect(await store.recordAssertion(admin, 'jti-old', Date.now() + 60_000)).toBe(true);
  });
});
